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
            var settings = WriterSettings()
            settings.compress = compress
            try convert(common, format: .npz, settings: settings)
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
            try convert(common, format: .npy, settings: WriterSettings())
        }
    }
}

/// Converts the dataset the common options name into `format`, set up by `settings` (threads: --jobs).
func convert(_ common: ConversionOptionGroup, format: ContainerFormat, settings: WriterSettings) throws {
    let output = common.output
    var settings = settings
    settings.threads = common.jobs
    let writer = format.makeWriter(path: output, settings: settings)
    // A device, FIFO, socket or folder where an output goes is refused before any work.
    try writer.checkTargets()
    var converter = Converter(options: try common.options(compress: settings.compress || settings.gzip))
    converter.warn = { Console.warning($0) }
    ProgressBar.shared.begin(mode: common.progressMode)
    converter.progress = { ProgressBar.shared.update(done: $0, total: $1, bytes: $2, skipped: $3) }
    let name = output.split(separator: "/").last.map(String.init) ?? output
    let s = try converter.convert(source: common.source, writer: writer, outputName: name, formatName: format.name)
    ProgressBar.shared.clear()
    if !common.quiet {
        let shape = s.shape.map(String.init).joined(separator: "x")
        let rate = s.seconds > 0 ? Double(s.images) / s.seconds : 0
        let size = Double(diskSize(output)) / 1e6
        Console.out("imgconv: wrote '\(output)' (\(String(format: "%.1f", size)) MB): \(counted(s.images, "image")) (\(s.formatsText)), \(counted(s.classes, "class", "classes")), trainXs \(shape) \(s.dtype.rawValue), \(s.skipped) skipped, \(String(format: "%.2f", s.seconds)) s, \(String(format: "%.0f", rate)) images/s")
        // The files left out, by reason: the first ten of each (the manifest lists them all).
        for group in s.skippedByReason {
            let shown = group.paths.prefix(10).map { "'\($0)'" }.joined(separator: ", ")
            let more = group.paths.count > 10 ? ", and \(group.paths.count - 10) more (all in the manifest)" : ""
            Console.warning("left out \(group.paths.count) \(group.paths.count == 1 ? "file" : "files") (\(group.reason)): \(shown)\(more)")
        }
    }
}

/// Bytes of a file, or of the files directly in a folder.
func diskSize(_ path: String) -> Int {
    var st = stat()
    guard stat(path, &st) == 0 else { return 0 }
    if (st.st_mode & S_IFMT) != S_IFDIR { return Int(st.st_size) }
    let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
    return names.reduce(0) { total, name in
        var f = stat()
        return total + (stat(path + "/" + name, &f) == 0 && (f.st_mode & S_IFMT) == S_IFREG ? Int(f.st_size) : 0)
    }
}
