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

    @Flag(help: "Deflate the members (as numpy.savez_compressed).")
    var compress = false

    func run() throws {
        try IMGConvCommand.run {
            let writer = NPZWriter(path: common.output, compress: compress)
            try convert(common, writer: writer, format: "npz", compress: compress)
        }
    }
}

struct ToNPY: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "to-npy",
        abstract: "Write trainXs.npy, trainYs.npy, classNames.npy and manifest.json into a folder.")

    @OptionGroup var common: ConversionOptionGroup

    func run() throws {
        try IMGConvCommand.run {
            let writer = NPYDirectoryWriter(directory: common.output)
            try convert(common, writer: writer, format: "npy", compress: false)
        }
    }
}

func convert(_ common: ConversionOptionGroup, writer: DatasetWriter, format: String, compress: Bool) throws {
    let output = common.output
    var converter = Converter(options: try common.options(compress: compress))
    converter.warn = { Console.warning($0) }
    let name = output.split(separator: "/").last.map(String.init) ?? output
    let s = try converter.convert(source: common.source, writer: writer, outputName: name, formatName: format)
    if !common.quiet {
        let shape = s.shape.map(String.init).joined(separator: "x")
        let rate = s.seconds > 0 ? Double(s.images) / s.seconds : 0
        Console.out("imgconv: wrote '\(output)': \(s.images) images, \(s.classes) classes, trainXs \(shape) \(s.dtype.rawValue), \(s.skipped) skipped, \(String(format: "%.2f", s.seconds)) s (\(String(format: "%.0f", rate)) images/s)")
    }
}
