import ArgumentParser
import Foundation
import ImgConv
import ImgConvCore

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Describe an .npz, .npy folder, .h5 or IDX file: tensors, class names and counts, pixel statistics.")

    @Argument(help: "An .npz or .h5 file, a folder of .npy files, or an IDX images file (or its folder).")
    var path: String

    @Option(help: "The IDX labels file, when its name does not follow MNIST's.")
    var labels: String?

    @Flag(help: "Print JSON (sorted keys) instead of text.")
    var json = false

    @Flag(help: "Skip the pixel statistics (they read every image once).")
    var noStats = false

    func run() throws {
        try IMGConvCommand.run {
            let report = try Inspector(stats: !noStats).inspect(path: path, labels: labels)
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
                Console.out(String(decoding: try encoder.encode(report), as: UTF8.self))
                return
            }
            Console.out("\(report.path): \(report.format), \(report.images) images, \(report.classes.count) classes")
            Console.out("tensors:")
            for t in report.tensors {
                let shape = t.shape.isEmpty ? "scalar" : t.shape.map(String.init).joined(separator: "x")
                Console.out("  \(t.name)  \(shape)  \(t.dtype)  compression: \(t.compression)  (\(t.storage))")
            }
            Console.out("classes (names from the \(report.classNamesSource)):")
            for c in report.classes { Console.out("  \(c.index)  \(c.name)  \(c.count)") }
            if report.labelsOutOfRange > 0 { Console.out("  \(report.labelsOutOfRange) labels outside [0, \(report.classes.count))") }
            if let pixels = report.pixels {
                Console.out("pixels (trainXs):")
                for p in pixels {
                    Console.out("  channel \(p.channel): min \(format(p.min)), max \(format(p.max)), mean \(String(format: "%.4f", p.mean))")
                }
            }
            Console.out("manifest: \(report.manifest ?? "none")")
        }
    }

    private func format(_ v: Double) -> String {
        v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(v)
    }
}
