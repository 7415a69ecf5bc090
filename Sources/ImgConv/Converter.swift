import FoundationEssentials
import Glibc
import ImgConvCodecs
import ImgConvCore
import ImgConvFormats

/// What a finished conversion reports.
public struct ConversionSummary: Sendable {
    public var images: Int
    public var classes: Int
    public var skipped: Int
    public var shape: [Int]
    public var dtype: DType
    public var seconds: Double
    public var outputBytes: Int
    public var manifestPath: String
    /// Images converted from each file format (`png`, `webp`...; a TIFF page or a frame is one).
    public var formats: [String: Int] = [:]
    /// The files left out, with why (as the manifest lists them).
    public var skippedFiles: [SkippedFile] = []

    /// The files left out grouped by reason (`reasonKey`), the largest group first.
    public var skippedByReason: [(reason: String, paths: [String])] {
        Dictionary(grouping: skippedFiles, by: { reasonKey($0.reason) })
            .map { (reason: $0.key, paths: $0.value.map(\.path)) }
            .sorted { ($1.paths.count, $0.reason) < ($0.paths.count, $1.reason) }
    }

    /// "97 webp, 1 gif, 1 bmp": the formats by count, then name.
    public var formatsText: String {
        formats.sorted { ($1.value, $0.key) < ($0.value, $1.key) }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
    }
}

/// Where the images come from.
public enum DatasetSource: Sendable {
    /// `ROOT/<class>/**/<file>`.
    case folders(String)
    /// A CSV of `path,label[,split]` rows.
    case list(String)

    var kind: String {
        switch self {
        case .folders: return "folders"
        case .list: return "list"
        }
    }
}

/// Converts a folder of class subfolders into tensors, in stages that live beside their data:
/// scan (`DatasetScanner`, `ListScanner`) -> header pass (`HeaderPass`) -> one plan
/// (`ImagePlan.planning`) -> splits and shuffle (`SplitPlan.parts`) -> decode and conform in
/// parallel (`DecodeJob`) -> write in order (`DatasetWriter`) -> manifest
/// (`ConversionOptions.manifestOptions`) -> commit. This type runs them and collects the manifest.
public struct Converter {
    public var options: ConversionOptions
    /// Called with each warning (empty classes, skipped files) as it happens.
    public var warn: (String) -> Void = { _ in }
    /// Called after each image is written: (images done, images planned, image bytes written).
    /// Told after each file of the decode pass: files done, files planned, tensor bytes written,
    /// files left out so far (scan, header and decode).
    public var progress: (Int, Int, Int, Int) -> Void = { _, _, _, _ in }

    public init(options: ConversionOptions) { self.options = options }

    /// Converts a folder of class folders with `writer`.
    /// - Throws: `ImgConvError` naming the file at fault; the writer's output is then left as it was.
    public func convert(root: String, writer: DatasetWriter, outputName: String, formatName: String) throws -> ConversionSummary {
        try convert(source: .folders(root), writer: writer, outputName: outputName, formatName: formatName)
    }

    /// Converts a dataset (class folders or a CSV list) with `writer`.
    ///
    /// Most datasets are converted in one pass that reads each file once: the tensor is planned
    /// from the first image, and every image is checked against that plan as it is decoded. An
    /// image the plan does not foresee (a colour image after gray ones with `--color auto`, a
    /// wider sample type with `--dtype auto`, another size, a multipage TIFF with `--tiff-pages
    /// all`, an animation with `--frames all`), or any error, abandons that pass: the conversion then starts over in two passes,
    /// all headers first, which gives the same result and the same error a single pass could
    /// not. Shuffled and split datasets always take two passes (the order depends on which files
    /// turn out to be images).
    /// - Throws: `ImgConvError` naming the file at fault; the writer's output is then left as it was.
    public func convert(source: DatasetSource, writer: DatasetWriter, outputName: String, formatName: String) throws -> ConversionSummary {
        let start = Date()
        // A device, FIFO, socket or folder where an output goes is refused before any work.
        try writer.checkTargets()
        try checkMemoryForSize()
        let (scan, root) = try self.scan(source)
        // No output may replace an input: an image, the CSV, the classes file.
        let listInput: [(path: String, role: String)] = if case .list(let csv) = source { [(csv, "the --list CSV")] } else { [] }
        try refuseOutputsAmongInputs(writer.outputFiles, inputs: listInput + options.otherInputs)
        // One file at a time (a path string for a name that matches, gone at once): memory stays
        // flat in the file count.
        try refuseOutputsAmongInputs(writer.outputFiles, images: scan.files)
        scan.warnings.forEach(warn)
        try checkLabelCapacity(scan)
        // --check: every source read once more first, its findings kept for the manifest.
        let findings = options.check ? try checkFindings(source) : nil
        let headers = HeaderPass(decoders: Decoders(options: options.decode), tiffPages: options.tiffPages, frames: options.frames)
        var run = Run(scan: scan, root: root, source: source, writer: writer, outputName: outputName,
                      formatName: formatName, headers: headers, start: start)
        run.check = findings
        // Warnings are said once, even when a single pass is abandoned and the work starts over.
        var said = Set<String>()
        let warnOnce: (String) -> Void = { [warn] text in if said.insert(text).inserted { warn(text) } }
        if options.shuffleSeed == nil && options.split == nil && !scan.files.hasSplits,
           let plan = try onePassPlan(scan.files, headers: headers) {
            let files = scan.files
            do {
                return try write(&run, parts: [WorkPart(name: "train", count: files.count, item: { Item(file: files[$0]) })],
                                 plan: plan, planned: scan.files.count, onePass: true, warn: warnOnce)
            } catch is Replan {
                run.reset()
            }
        }

        let planned = try planAll(scan: scan, headers: headers, findings: &run.findings, warn: warnOnce)
        let candidates = planned.candidates
        // 2. Decode, conform and write, split by split, in dataset order within each.
        let parts = planned.parts.map { part in
            WorkPart(name: part.name, count: part.items.count, item: { i in
                let c = candidates[Int(part.items[i])]
                return Item(file: c.file, probed: c)
            })
        }
        return try write(&run, parts: parts, plan: planned.plan, planned: candidates.count, onePass: false, warn: warnOnce)
    }

    /// Refuses a label dtype that cannot hold the class count.
    func checkLabelCapacity(_ scan: ScanResult) throws {
        if options.labelDType == .uint8 && scan.classes.count > 256 {
            throw ImgConvError(.invalidArgument, "uint8 labels hold at most 256 classes; this dataset has \(scan.classes.count) (use --label-dtype int32)")
        }
    }

    /// What `check` finds in `source` with these options, as the manifest's `check` member.
    func checkFindings(_ source: DatasetSource) throws -> JSONValue {
        var checker = Checker(options: options)
        checker.progress = { done, total, left in progress(done, total, 0, left) }
        let report = try checker.check(source: source)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return try JSONDecoder().decode(JSONValue.self, from: encoder.encode(report))
    }

    /// Scans the dataset's folders or list. - Returns: the scan and the root the manifest names.
    func scan(_ source: DatasetSource) throws -> (ScanResult, String) {
        switch source {
        case .folders(let r):
            return (try DatasetScanner(classes: options.classes, naturalOrder: options.classSort == .natural,
                                       skipBadNames: options.skipBad).scan(root: r), r)
        case .list(let csv):
            return (try ListScanner(classes: options.classes, naturalOrder: options.classSort == .natural).scan(list: csv), csv)
        }
    }

    /// Every image of a dataset, the plan of its tensor and each split's order: what the two-pass
    /// conversion and `imgconv plan` work from.
    struct Planned {
        var candidates: CandidateList
        var plan: ImagePlan
        var parts: [SplitPart]
    }

    /// Reads every header (in parallel, 24 bytes kept an image), plans the tensor, divides and
    /// orders the splits; header-time skips and ignored pages go into `run`.
    func planAll(scan: ScanResult, headers: HeaderPass, findings run: inout HeaderFindings,
                 warn warnOnce: @escaping (String) -> Void) throws -> Planned {
        // 1. Headers, in parallel, to plan the tensor before any pixel is decoded. What is kept of
        // each image is 24 bytes (CandidateList), so this pass too is flat in the number of files.
        var candidates = CandidateList(files: scan.files)
        try runOrderedPipeline(count: scan.files.count, jobs: options.jobs, window: 1024, batch: 32,
                               work: { headers.probe(scan.files[$0]) },
                               consume: { i, r in
            switch try r.get() {
            case .images(let found, let ignored):
                for c in found { candidates.append(fileIndex: i, c) }
                run.countIgnored(ignored, of: found.first?.format)
            case .skip(let reason): run.headerSkipped.append(SkippedFile(path: scan.files.relativePath(at: i), reason: reason))
            case .bad(let e):
                // --skip-bad leaves out bad files, never good ones the host failed to read.
                guard options.skipBad, !e.isHostFault else { throw e }
                warnOnce("skipping \(e)")
                run.headerSkipped.append(SkippedFile(path: scan.files.relativePath(at: i), reason: e.message))
            }
        })
        if candidates.count == 0 {
            // Name the root and why each file was left out, not only that nothing was found.
            let left = scan.skipped + run.headerSkipped
            let reasons = Dictionary(grouping: left, by: { reasonKey($0.reason) })
                .sorted { ($1.value.count, $0.key) < ($0.value.count, $1.key) }.map { "\($0.value.count) \($0.key)" }
            throw ImgConvError(.notFound, path: scan.root,
                               "no decodable images found" + (reasons.isEmpty ? " (no files)" : " (\(reasons.joined(separator: ", ")))"))
        }
        let plan = try makePlan(candidates)   // every header known: the plan of the whole tensor
        run.warnIgnored(warnOnce)
        let parts = try SplitPlan.parts(count: candidates.count, label: { candidates.label(at: $0) },
                                        file: { candidates.fileIndex(at: $0) },
                                        split: { candidates[$0].file.split }, onDisk: candidates.files.hasSplits,
                                        plan: options.split, shuffleSeed: options.shuffleSeed,
                                        name: { candidates[$0].file.relativePath })
        return Planned(candidates: candidates, plan: plan, parts: parts)
    }

    /// Thrown to abandon a single pass (see `convert`).
    struct Replan: Error {}

    /// One image to decode: a file, with its header when the header pass has read it.
    struct Item {
        var file: SourceFile
        var probed: Candidate?
    }

    /// A split and what to decode for it, in output order.
    struct WorkPart {
        var name: String
        var count: Int
        var item: (Int) -> Item
    }

    /// What a conversion collects for its manifest as it goes.
    struct Run {
        let scan: ScanResult
        let root: String
        let source: DatasetSource
        let writer: DatasetWriter
        let outputName: String
        let formatName: String
        let headers: HeaderPass
        let start: Date
        var findings = HeaderFindings()
        var decodeSkipped: [SkippedFile] = []
        /// `check`'s findings (`--check`).
        var check: JSONValue?

        /// Forgets an abandoned pass (its output is already removed).
        mutating func reset() {
            findings = HeaderFindings()
            decodeSkipped = []
        }
    }

    /// What reading the headers finds besides images: files left out, pages and frames ignored.
    struct HeaderFindings {
        var headerSkipped: [SkippedFile] = []
        var ignoredPages = 0
        var ignoredFrames = 0

        /// Counts the pages of a TIFF, or the frames of an animation, left out.
        mutating func countIgnored(_ count: Int, of format: ImageFormat?) {
            if format == .tiff { ignoredPages += count } else { ignoredFrames += count }
        }

        /// The warnings about pages and frames left out.
        func warnIgnored(_ warn: (String) -> Void) {
            if ignoredPages > 0 { warn("\(ignoredPages) further TIFF pages ignored (--tiff-pages all converts them)") }
            if ignoredFrames > 0 { warn("\(ignoredFrames) further GIF/WebP animation frames ignored (--frames all converts them)") }
        }
    }

    /// What a worker hands to the writer for one item.
    enum Outcome {
        case image(DecodedImage, Candidate, ignoredPages: Int)
        case skip(String)
        /// `header`: the file failed before its pixels (as it would in the header pass).
        case bad(ImgConvError, header: Bool)
        case replan
    }

    /// The plan of a single pass: from the first file that is an image, when a single pass can
    /// hold to it; nil when the dataset needs two passes from the start.
    func onePassPlan(_ files: FileList, headers: HeaderPass) throws -> ImagePlan? {
        for file in files {
            switch headers.probe(file) {
            case .skip: continue
            case .bad(let e):
                if options.skipBad && !e.isHostFault { continue }
                return nil
            case .images(let found, _):
                guard found.count == 1, options.shaping.dtype.sampleDepth(widest: found[0].header.depth).holds(found[0].header.depth) else {
                    return nil
                }
                return try? makePlan(found)
            }
        }
        return nil
    }

    /// Reads, checks against the plan, decodes and conforms one file in a single pass.
    func decodeInOnePass(_ file: SourceFile, plan: ImagePlan, headers: HeaderPass, opened: InputFile? = nil) -> Outcome {
        let (probe, whole, reading) = headers.load(file, readWhole: true, opened: opened)
        switch probe {
        case .skip(let reason): return .skip(reason)
        case .bad(let e): return .bad(e, header: true)
        case .images(let found, let ignored):
            guard found.count == 1, let bytes = whole, plan.admits(found[0].header, request: options.shaping) else { return .replan }
            let c = found[0]
            do {
                let d = try DecodeJob.run(bytes, file: file, format: c.format, header: c.header, decoders: headers.decoders,
                                          plan: plan, resize: options.shaping.size != nil, page: 0, reading: reading)
                return .image(d, c, ignoredPages: ignored)
            } catch let e as ImgConvError {
                return .bad(e, header: false)
            } catch {
                return .bad(ImgConvError(.internal, path: file.relativePath, "\(error)"), header: false)
            }
        }
    }

    /// Decodes, conforms and writes the parts in order, then the manifest; commits.
    func write(_ run: inout Run, parts: [WorkPart], plan: ImagePlan, planned: Int, onePass: Bool,
               warn: @escaping (String) -> Void, shard: ShardRun? = nil) throws -> ConversionSummary {
        let scan = run.scan, writer = run.writer, headers = run.headers
        writer.labelEncoding = options.labelEncoding(classCount: scan.classes.count)
        var out = OutputManifest(writer: writer, classCount: scan.classes.count)
        var written = 0
        var done = 0
        var skippedBySplit: [String: Int] = [:]
        let named = parts.count > 1 || parts.first?.name != "train"
        do {
            for part in parts {
                writer.names = TensorNames(prefix: part.name)
                try writer.begin(plan: plan, count: onePass ? planned : part.count)
                var labels = PagedArray<Int32>()   // no growth slack: one per image of any number
                let item = part.item
                let flow = try fitToMemory(bytesPerImage: TensorLayout(plan: plan).bytesPerItem)
                let readAhead = ReadAhead(count: part.count) { item($0).file.path }
                try runOrderedPipeline(
                    count: part.count, jobs: flow.jobs, window: flow.window, batch: flow.batch,
                    work: { i -> Outcome in
                        let opened = readAhead.before(i)
                        let it = item(i)
                        guard let c = it.probed else { return decodeInOnePass(it.file, plan: plan, headers: headers, opened: opened) }
                        do {
                            return .image(try DecodeJob.run(c.file, format: c.format, header: c.header, decoders: headers.decoders,
                                                            plan: plan, resize: options.shaping.size != nil, page: c.page,
                                                            opened: opened),
                                          c, ignoredPages: 0)
                        } catch let e as ImgConvError {
                            return .bad(e, header: false)
                        }
                    },
                    consume: { i, result in
                        done += 1
                        // The worker has made an image's file already; the other outcomes are rare.
                        var file: SourceFile { item(i).file }
                        switch try result.get() {
                        case .image(let d, let c, let ignored):
                            let file = c.file
                            try writer.append(image: d.pixels)
                            written += d.pixels.count
                            labels.append(Int32(file.label))
                            run.findings.countIgnored(ignored, of: c.format)
                            if let w = d.warning { warn("'\(file.relativePath)': accepted with a warning: \(w)") }
                            let record = Manifest.FileRecord(path: file.relativePath, label: file.label,
                                                             format: c.format.rawValue, sha256: d.sha256,
                                                             page: c.header.pages > 1 && allPages(c.format) ? c.page : nil,
                                                             orientation: c.header.orientation > 1 ? c.header.orientation : nil,
                                                             warning: d.warning,
                                                             split: named ? part.name : nil)
                            try out.add(record)
                        case .skip(let reason):
                            run.findings.headerSkipped.append(SkippedFile(path: file.relativePath, reason: reason))
                        case .bad(let e, header: true):
                            guard options.skipBad, !e.isHostFault else {
                                if onePass { throw Replan() }
                                throw e
                            }
                            warn("skipping \(e)")
                            run.findings.headerSkipped.append(SkippedFile(path: file.relativePath, reason: e.message))
                        case .bad(let e, header: false):
                            guard options.skipBad, !e.isHostFault else {
                                if onePass { throw Replan() }
                                throw e
                            }
                            warn("skipping \(e)")
                            run.decodeSkipped.append(SkippedFile(path: file.relativePath, reason: e.message))
                            skippedBySplit[part.name, default: 0] += 1
                        case .replan:
                            throw Replan()
                        }
                        progress(done, planned, written, run.scan.skipped.count + run.findings.headerSkipped.count + run.decodeSkipped.count)
                    })
                out.tensors += try writer.endPart(labels: LabelColumn(labels))
                out.splitSizes[part.name] = labels.count
            }
            if onePass { run.findings.warnIgnored(warn) }
            let skipped = scan.skipped + run.findings.headerSkipped + run.decodeSkipped
            out.tensors += try writer.finish(classNames: scan.classes.map(\.name))
            var shardRecord: Manifest.Shard?
            if let shard {
                shardRecord = Manifest.Shard(index: shard.index, count: shard.count, planHash: shard.planHash,
                                             ranges: shard.ranges, skippedBySplit: skippedBySplit)
            }
            try out.commit(writer, .init(root: run.root, kind: run.source.kind, outputName: run.outputName, formatName: run.formatName,
                                         options: options.manifestOptions(), classNames: scan.classes.map(\.name),
                                         skipped: skipped, warnings: scan.warnings, ignoredPages: run.findings.ignoredPages,
                                         ignoredFrames: run.findings.ignoredFrames, named: named, shard: shardRecord,
                                         check: run.check))
            return ConversionSummary(images: out.images, classes: scan.classes.count, skipped: skipped.count,
                                     shape: out.tensors[0].shape, dtype: plan.dtype,
                                     seconds: Date().timeIntervalSince(run.start), outputBytes: 0,
                                     manifestPath: writer.manifestPath, formats: out.formats, skippedFiles: skipped)
        } catch {
            writer.abort()
            throw error
        }
    }

    /// Whether every page (TIFF) or frame (GIF, WebP) of a file of `format` is an image of its own.
    func allPages(_ format: ImageFormat) -> Bool {
        switch format {
        case .tiff: return options.tiffPages == .all
        case .gif, .webp: return options.frames == .all
        default: return false
        }
    }

    /// What `--size` implies, checked against the memory guard before any work: the images in
    /// flight at that size (channels and sample size as the options imply them; `auto` counted as
    /// 16-bit, `keep` as four channels) must fit in a quarter of the machine's memory.
    /// - Throws: `.invalidArgument` with the figure.
    func checkMemoryForSize() throws {
        // Under a limit set on the process (ulimit -v, a cgroup) `fitToMemory` fits the jobs and
        // the images in flight to it once the plan is known, and refuses (71) when one cannot fit.
        guard let size = options.shaping.size, !MemoryCeiling.atStart.source.isProcessLimit else { return }
        let channels: Int = switch options.shaping.color {
        case .gray: 1
        case .rgb, .auto: 3
        case .rgba, .keep: 4
        }
        let sampleBytes: Int = switch options.shaping.dtype {
        case .uint8: 1
        case .uint16, .auto: 2
        case .float16, .float32, .uint32, .int32: 4   // float16 is conformed in float32
        case .float64: 8
        }
        let inFlight = max(1, options.jobs) * 4 + 1
        let budget = DecodeLimits.memoryBudget
        guard let image = checkedByteCount([size.height, size.width, channels], elementSize: sampleBytes),
              image <= budget / inFlight else {
            let gib = { (bytes: Double) in cFormat("%.1f GiB", bytes / Double(1 << 30)) }
            let need = Double(size.height) * Double(size.width) * Double(channels * sampleBytes)
            throw ImgConvError(.invalidArgument,
                               "--size \(size.height)x\(size.width): \(inFlight) images in flight of \(gib(need)) each need \(gib(need * Double(inFlight))), more than a quarter of this machine's memory (\(gib(Double(budget))))")
        }
    }

    /// What the decode pipeline may use under a memory limit set on the process (`MemoryCeiling`):
    /// as many of the requested jobs, and as many images in flight, as fit in what the limit
    /// leaves; the requested figures when there is no such limit.
    /// - Throws: `.resources` (71) with the figures when even one job cannot fit.
    func fitToMemory(bytesPerImage b: Int) throws -> (jobs: Int, window: Int, batch: Int) {
        let requested = max(1, options.jobs)
        let flow = pipelineFlow(bytesPerImage: b, jobs: requested)
        let ceiling = MemoryCeiling.current()
        guard ceiling.source.isProcessLimit else { return (requested, flow.window, flow.batch) }
        // What any run holds (buffers of the writer, hashing, compressing threads, the manifest,
        // libraries' own), a worker (its stack; the decoded image, its conformed and resized
        // copies) and an image in flight: estimates on the high side.
        let fixed = MemoryCeiling.minimum
        let perJob = (8 << 20) + 3 * b
        for jobs in stride(from: requested, through: 1, by: -1) {
            if jobs == 1 {
                // Decoded on this thread, one image at a time.
                if fixed + 4 * b <= ceiling.bytes { return (1, 1, 1) }
                break
            }
            let f = pipelineFlow(bytesPerImage: b, jobs: jobs)
            if fixed + jobs * perJob + f.window * b <= ceiling.bytes { return (jobs, f.window, f.batch) }
            if fixed + jobs * perJob + 2 * jobs * b <= ceiling.bytes { return (jobs, 2 * jobs, 1) }
        }
        throw ImgConvError(.resources, "out of memory: converting images of \(mib(b)) each needs about \(mib(fixed + 4 * b)), more than \(ceiling)")
    }

    /// The plan of the whole tensor from the images' headers (see `ImagePlan.planning`).
    func makePlan<C: RandomAccessCollection>(_ candidates: C) throws -> ImagePlan where C.Element == Candidate {
        try ImagePlan.planning(candidates.lazy.map(\.header), name: { candidates[$0].file.relativePath },
                               request: options.shaping, warn: warn)
    }
}

/// Renames a finished output and its manifest (written in full already) into place as one unit:
/// data first, then the manifest, under a lock on their folder, so two runs writing the same
/// target commit one after the other and the pair is always one run's (a signal in between is
/// held back until both are in place, see `TemporaryFiles`).
func commitWithManifest(_ writer: DatasetWriter, _ manifestFile: AtomicOutputFile) throws {
    // On its way to disk before the output's sync (a journal commit then often takes both).
    try manifestFile.startWriteback()
    try withFolderLock(parentFolder(writer.manifestPath)) {
        try writer.commit()
        try manifestFile.commit()
    }
}

/// Groups skip reasons for the summary: "unsupported format: BMP" stays whole, other reasons
/// lose their file-specific detail after the first colon.
func reasonKey(_ reason: String) -> String {
    if reason.hasPrefix("unsupported format") { return reason }
    return reason.split(separator: ":").first.map(String.init) ?? reason
}
