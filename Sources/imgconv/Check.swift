import ArgumentParser
import FoundationEssentials
import Glibc
import ImgConv
import ImgConvCore

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Read every image of a dataset once, as a conversion with these options would, and report what would fail or mislead (no tensor is written).",
        usage: "imgconv check ROOT|FILE [<options>]\n  imgconv check --list CSV [<options>]",
        discussion: """
            Reports undecodable files, extensions that name another format, unsupported and refused files, \
            EXIF/TIFF orientation, histograms of channels, sample types and sizes with what --color, --dtype and \
            the size check decide, class-name pitfalls, class and split balance, and byte, pixel and near \
            duplicates (a leak when a group spans splits). ROOT is read with the conversion options below; \
            FILE, an existing output (.npz, .npy folder, .h5, IDX), is checked from its manifest and stored \
            tensors. The positional argument is ROOT or FILE only (no OUT).
            """)

    /// ROOT (or, with --list, nothing) or FILE, and the conversion options: ROOT is read as a
    /// conversion with them would read it.
    @OptionGroup var common: ConversionOptionGroup

    @Option(help: "Perceptual hashes at most this many bits apart (of 63) are near duplicates.")
    var nearThreshold: Int = PerceptualHash.defaultThreshold

    @Option(help: ArgumentHelp("Exit 65 when the report has any of these findings: corrupt, mismatch, unsupported, refused, orientation, names, empty, duplicates, near, leak (kind=N: more than N), imbalance[=R] (largest class over R times the smallest; R defaults to 10), or any.", valueName: "kind[=N],..."))
    var failOn: String?

    @Flag(help: "Print the report as JSON (Schemas/check.schema.json, sorted keys) instead of text.")
    var json = false

    func validate() throws {
        try common.validatePaths(outputs: 0)
        if common.plan != nil || common.check { throw ValidationError("--plan and --check go with the to-* commands") }
        if !(0...63).contains(nearThreshold) { throw ValidationError("--near-threshold must be 0-63") }
        if let failOn {
            do { _ = try FailOn.parse(failOn) } catch let e as ImgConvError { throw ValidationError(e.message) }
        }
    }

    func run() throws {
        try IMGConvCommand.run {
            var checker = Checker(options: try common.options(compress: false))
            checker.threshold = nearThreshold
            checker.warn = { Console.warning($0) }
            ProgressBar.shared.begin(mode: common.progressMode)
            checker.progress = { ProgressBar.shared.update(done: $0, total: $1, bytes: 0, skipped: $2) }
            let report: CheckReport
            if common.list == nil, Self.isContainer(common.paths[0]) {
                report = try checker.check(container: common.paths[0])
            } else {
                report = try checker.check(source: common.source)
            }
            ProgressBar.shared.clear()
            if json {
                try Console.outJSON(report)
            } else {
                printText(report)
            }
            if let failOn {
                let failures = try FailOn.parse(failOn).failures(report)
                if !failures.isEmpty {
                    throw ImgConvError(.verificationFailed, path: report.source.root, "check --fail-on: \(failures.joined(separator: ", "))")
                }
            }
        }
    }

    /// Whether `path` is an output to check rather than a dataset root: a file, or a folder that
    /// holds a manifest, `.npy` files or an IDX images file (a root holds class folders).
    static func isContainer(_ path: String) -> Bool {
        var st = stat()
        guard stat(path, &st) == 0 else { return false }
        guard (st.st_mode & S_IFMT) == S_IFDIR else { return true }
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        return entries.contains { $0 == "manifest.json" || $0.hasSuffix(".npy") || ($0.contains("-images-idx") && !$0.hasPrefix(".")) }
    }

    private func printText(_ r: CheckReport) {
        Console.out("\(r.source.root): \(r.files) files, \(r.images) images, \(r.classes.count) classes")
        func list(_ title: String, _ items: [CheckReport.FileIssue]) {
            guard !items.isEmpty else { return }
            Console.out("\(title) (\(items.count)):")
            for i in items { Console.out("  \(i.path): \(i.reason)") }
        }
        list("cannot be decoded", r.problems.decodeFailures)
        if !r.problems.extensionMismatches.isEmpty {
            Console.out("extension names another format (\(r.problems.extensionMismatches.count)):")
            for m in r.problems.extensionMismatches { Console.out("  \(m.path): named \(m.named), is \(m.format)") }
        }
        list("unsupported formats", r.problems.unsupported)
        list("not images", r.problems.notImages)
        list("refused by the options", r.problems.refused)
        list("skipped by the scan", r.problems.skipped)
        if let refusal = r.problems.conversionRefusal { Console.out("a conversion with these options would stop: \(refusal)") }
        Console.out("orientation: \(r.orientation.rotated) images turned upright" +
                    (r.orientation.examples.isEmpty ? "" : " (first: \(r.orientation.examples.joined(separator: ", ")))"))
        list("malformed orientation", r.orientation.malformed)
        for (name, d) in [("channels", r.channels), ("samples", r.depths), ("sizes", r.sizes)] {
            let histogram = d.histogram.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
                .prefix(12).map { "\($0.key): \($0.value)" }.joined(separator: ", ")
            Console.out("\(name): \(histogram)\(d.histogram.count > 12 ? ", ..." : "")")
            var line = "  \(d.option) -> \(d.decision)"
            if !d.forcedBy.isEmpty { line += ", forced by \(d.forcedBy.joined(separator: ", "))" }
            Console.out(line)
            if d.againstCount > 0 {
                Console.out("  \(d.againstCount) differ: \(d.against.joined(separator: ", "))\(d.againstCount > d.against.count ? ", ..." : "")")
            }
        }
        if !r.classes.empty.isEmpty { Console.out("empty classes: \(r.classes.empty.joined(separator: ", "))") }
        if let n = r.classes.numericOrder {
            Console.out("numeric class names in code-point order: \(n.order.joined(separator: ", ")); --sort natural gives \(n.natural.joined(separator: ", "))")
        }
        for s in r.classes.similarNames { Console.out("class names that differ only by \(s.kind): \(s.names.joined(separator: ", "))") }
        Console.out("balance: " + r.balance.classes.map { "\($0.name) \($0.count)" }.joined(separator: ", "))
        if let ratio = r.balance.ratio, let most = r.balance.largest, let least = r.balance.smallest {
            Console.out("  largest/smallest: \(cFormat("%.2f", ratio)) (\(most) / \(least))")
        }
        for s in r.balance.splits {
            Console.out("  \(s.name) \(s.count): " + zip(r.balance.classes, s.classes).map { "\($0.name) \($1)" }.joined(separator: ", "))
        }
        let d = r.duplicates
        for (title, groups) in [("byte-identical files", d.bytes), ("identical pixels", d.pixels),
                                ("near duplicates (perceptual hash within \(d.threshold) bits)", d.near)] where !groups.isEmpty {
            Console.out("\(title) (\(groups.count) groups):")
            for g in groups {
                let files = g.files.map { $0.split.map { s in "\(s):" } ?? "" }.enumerated().map { "\($1)\(g.files[$0].path)" }
                Console.out("  \(g.leak ? "LEAK " : "")\(files.joined(separator: ", "))\(g.maxDistance.map { " (distance up to \($0))" } ?? "")")
            }
        }
        Console.out("leaks: \(r.counts.leak)")
    }
}
