import ArgumentParser
import Foundation
import ImgConv
import ImgConvCore
import ImgConvFormats

struct ToNPZ: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "to-npz",
        abstract: "Write trainXs, trainYs and classNames into one .npz (numpy.load opens it).")

    @OptionGroup var common: ConversionOptionGroup

    @Argument(help: "Output .npz file (the manifest goes to <out>.manifest.json).")
    var output: String

    @Flag(help: "Deflate the members (as numpy.savez_compressed).")
    var compress = false

    func run() throws {
        try IMGConvCommand.run {
            let writer = NPZWriter(path: output, compress: compress)
            try convert(common, writer: writer, output: output, format: "npz", compress: compress)
        }
    }
}

struct ToNPY: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "to-npy",
        abstract: "Write trainXs.npy, trainYs.npy, classNames.npy and manifest.json into a folder.")

    @OptionGroup var common: ConversionOptionGroup

    @Argument(help: "Output folder (created if missing).")
    var output: String

    func run() throws {
        try IMGConvCommand.run {
            let writer = NPYDirectoryWriter(directory: output)
            try convert(common, writer: writer, output: output, format: "npy", compress: false)
        }
    }
}

func convert(_ common: ConversionOptionGroup, writer: DatasetWriter, output: String, format: String, compress: Bool) throws {
    var converter = Converter(options: try common.options(compress: compress))
    converter.warn = { Console.warning($0) }
    let name = output.split(separator: "/").last.map(String.init) ?? output
    let s = try converter.convert(root: common.root, writer: writer, outputName: name, formatName: format)
    if !common.quiet {
        let shape = s.shape.map(String.init).joined(separator: "x")
        let rate = s.seconds > 0 ? Double(s.images) / s.seconds : 0
        Console.out("imgconv: wrote '\(output)': \(s.images) images, \(s.classes) classes, trainXs \(shape) \(s.dtype.rawValue), \(s.skipped) skipped, \(String(format: "%.2f", s.seconds)) s (\(String(format: "%.0f", rate)) images/s)")
    }
}
