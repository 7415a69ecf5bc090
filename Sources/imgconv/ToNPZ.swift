import ArgumentParser
import FoundationEssentials
import Glibc
import ImgConv
import ImgConvCore
import ImgConvFormats

struct ToNPZ: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "to-npz",
        abstract: "Write trainXs, trainYs and classNames into one .npz (numpy.load opens it).")

    @OptionGroup var common: ConversionOptionGroup

    func validate() throws { try common.validatePaths(outputs: 1) }

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

    func validate() throws { try common.validatePaths(outputs: 1) }

    func run() throws {
        try IMGConvCommand.run {
            try convert(common, format: .npy, settings: WriterSettings())
        }
    }
}

/// Converts the dataset the common options name into `format`, set up by `settings` (threads: --jobs).
func convert(_ common: ConversionOptionGroup, format: ContainerFormat, settings: WriterSettings) throws {
    var settings = settings
    settings.threads = common.jobs
    if let planPath = common.plan { return try convertShard(common, plan: planPath, format: format, settings: settings) }
    let output = common.output
    let writer = format.makeWriter(path: output, settings: settings)
    // A device, FIFO, socket or folder where an output goes is refused before any work.
    try writer.checkTargets()
    var converter = Converter(options: try common.options(compress: settings.compress || settings.gzip))
    report(&converter, common)
    let name = output.split(separator: "/").last.map(String.init) ?? output
    let s = try converter.convert(source: common.source, writer: writer, outputName: name, formatName: format.name)
    ProgressBar.shared.clear()
    if !common.quiet { reportConversion(s, output: output) }
}

/// Warnings and progress of a conversion on stderr, as --quiet and --progress ask.
func report(_ converter: inout Converter, _ common: ConversionOptionGroup) {
    converter.warn = { Console.warning($0) }
    ProgressBar.shared.begin(mode: common.progressMode)
    converter.progress = { ProgressBar.shared.update(done: $0, total: $1, bytes: $2, skipped: $3) }
}

/// The summary line of a conversion (or a shard, or a merge).
func reportConversion(_ s: ConversionSummary, output: String) {
    do {
        let shape = s.shape.map(String.init).joined(separator: "x")
        let rate = s.seconds > 0 ? Double(s.images) / s.seconds : 0
        let size = Double(diskSize(output)) / 1e6
        Console.out("imgconv: wrote '\(output)' (\(cFormat("%.1f", size)) MB): \(counted(s.images, "image")) (\(s.formatsText)), \(counted(s.classes, "class", "classes")), trainXs \(shape) \(s.dtype.rawValue), \(s.skipped) skipped, \(cFormat("%.2f", s.seconds)) s, \(cFormat("%.0f", rate)) images/s")
        // The files left out, by reason: the first ten of each (the manifest lists them all).
        for group in s.skippedByReason {
            let shown = group.paths.prefix(10).map { "'\($0)'" }.joined(separator: ", ")
            let more = group.paths.count > 10 ? ", and \(group.paths.count - 10) more (all in the manifest)" : ""
            Console.warning("left out \(group.paths.count) \(group.paths.count == 1 ? "file" : "files") (\(group.reason)): \(shown)\(more)")
        }
    }
}

/// `to-* --plan P --shard K/N OUTDIR`: converts shard K's range of every split into
/// `OUTDIR/part-0000K-of-0000N.<format>` and its manifest (the done marker), and leaves a copy of
/// the plan in OUTDIR for `merge`. A part that is already there, of this plan, and verifies is
/// kept (exit 0) unless --force.
func convertShard(_ common: ConversionOptionGroup, plan planPath: String, format: ContainerFormat, settings: WriterSettings) throws {
    // The plan fixes every conversion option: one given here too would be ignored, so it is refused.
    guard try common.options(compress: false).manifestOptions() == ConversionOptions().manifestOptions() else {
        throw ImgConvError(.invalidArgument, "with --plan, the conversion options are the plan's: give only --shard, --force, --jobs, -q and the format's own options")
    }
    let planBytes = try readFile(planPath, maxBytes: 1 << 34)
    let (k, n) = common.shardNumbers!
    let folder = common.output
    let output = folder + "/" + ShardPlan.partName(k, of: n, format: format.name)
    let writer = format.makeWriter(path: output, settings: settings)
    // Only what this shard needs of the plan is decoded (and the plan's files named like an output).
    let slice = try ShardPlan.loadShard(planPath, bytes: planBytes, index: k, of: n,
                                        names: writer.outputFiles.map { Array(lastPathComponent($0).utf8) })
    let plan = slice.plan
    try createFolders(folder)
    // The plan beside the parts, for merge: this plan's, or the run refuses to mix plans.
    let copy = ShardMerger.planPath(folder)
    // The same bytes are the same plan (no need to parse it again); another form may be too.
    if access(copy, F_OK) != 0 || common.force ||
        (!fileHolds(copy, planBytes) && (try? ShardPlan.load(copy).hash) != plan.hash) {
        if access(copy, F_OK) == 0 && !common.force {
            throw ImgConvError(.corruptInput, path: folder, "holds the parts of another plan (plan.json); use another folder, or --force to start this plan there")
        }
        try writeFileAtomically(copy, planBytes)
    }
    // A part there already is checked against the whole plan (decoded only then).
    if !common.force && access(format.manifestPath(output), F_OK) == 0,
       let whole = try? ShardPlan.load(planPath, bytes: planBytes),
       (try? ShardMerger.partIsDone(output, shard: k, of: whole, jobs: common.jobs)) == true {
        if !common.quiet { Console.out("imgconv: '\(output)' is done already (plan \(plan.hash.prefix(12))); --force converts it again") }
        return
    }
    var options = try ConversionOptions(manifest: plan.options)
    options.jobs = common.jobs
    options.compress = settings.compress || settings.gzip
    var converter = Converter(options: options)
    report(&converter, common)
    let s = try converter.convertShard(slice, writer: writer, outputName: ShardPlan.partName(k, of: n, format: format.name),
                                       formatName: format.name)
    ProgressBar.shared.clear()
    if !common.quiet { reportConversion(s, output: output) }
}

/// Whether the file at `path` holds exactly `bytes`, read in pieces (no second copy in memory of a
/// plan that can be hundreds of MB).
func fileHolds(_ path: String, _ bytes: [UInt8]) -> Bool {
    guard let input = try? InputFile(path), input.size == bytes.count else { return false }
    var at = 0
    do {
        try input.forEachChunk(4 << 20) { piece in
            let same = piece.withUnsafeBytes { p in bytes.withUnsafeBytes { memcmp(p.baseAddress!, $0.baseAddress! + at, p.count) == 0 } }
            guard same else { throw CancellationError() }
            at += piece.count
        }
    } catch { return false }
    return at == bytes.count
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
