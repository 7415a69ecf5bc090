import ArgumentParser
import FoundationEssentials
import Glibc
import ImgConv
import ImgConvCore

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Describe an .npz, .npy folder, .h5 or IDX file: tensors, class names and counts, pixel statistics.")

    @Argument(help: "An .npz or .h5 file, a folder of .npy files, or an IDX images file (or its folder).")
    var path: String

    @OptionGroup var read: ReadOptionGroup

    @Option(help: "In a folder of several IDX pairs, the one whose files start with this prefix.")
    var prefix: String?

    @Flag(help: "Print JSON (sorted keys) instead of text.")
    var json = false

    @Flag(help: "Skip the pixel statistics (they read every image once).")
    var noStats = false

    func run() throws {
        try IMGConvCommand.run {
            let report = try Inspector(stats: !noStats).inspect(path: path, read: read.options(prefix: prefix))
            if json {
                try Console.outJSON(report)
                return
            }
            let splitList = report.splits.map { "\($0.name) \($0.count)" }.joined(separator: ", ")
            Console.out("\(report.path): \(report.format), \(counted(report.images, "image"))\(splitList.isEmpty ? "" : " (\(splitList))"), \(counted(report.classes.count, "class", "classes")), \(report.labelForm) labels")
            Console.out("tensors:")
            for t in report.tensors {
                let shape = t.shape.isEmpty ? "scalar" : t.shape.map(String.init).joined(separator: "x")
                Console.out("  \(t.name)  \(shape)  \(t.dtype)  compression: \(t.compression)  (\(t.storage))")
            }
            if report.splits.isEmpty {
                Console.out("no pair of images and labels (name one with --xs NAME --ys NAME)")
            }
            Console.out("classes (names from the \(report.classNamesSource)):" + (report.splits.count > 1 ? "  total  " + report.splits.map(\.name).joined(separator: "  ") : ""))
            for c in report.classes {
                let perSplit = report.splits.count > 1 ? "  " + report.splits.map { String($0.classes[c.index].count) }.joined(separator: "  ") : ""
                Console.out("  \(c.index)  \(c.name)  \(c.count)\(perSplit)")
            }
            if report.labelsOutOfRange > 0 { Console.out("  \(report.labelsOutOfRange) labels outside [0, \(report.classes.count))") }
            for split in report.splits {
                guard let pixels = split.pixels else { continue }
                Console.out("pixels (\(split.images), \(report.layout)):")
                printStats(pixels)
            }
            if report.splits.count > 1, let pixels = report.pixels {
                Console.out("pixels (all splits):")
                printStats(pixels)
            }
            Console.out("manifest: \(report.manifest ?? "none")")
        }
    }

    private func printStats(_ pixels: [InspectionReport.ChannelStats]) {
        for p in pixels {
            Console.out("  channel \(p.channel): min \(format(p.min)), max \(format(p.max)), mean \(cFormat("%.4f", p.mean)), std \(cFormat("%.4f", p.std))")
        }
    }

    private func format(_ v: Double) -> String {
        v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(v)
    }
}
