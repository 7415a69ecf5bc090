import FoundationEssentials
import Glibc
import ImgConvCodecs
import ImgConvCore
import ImgConvFormats

/// What `merge --check` finds in a folder of parts.
public struct ShardCheck: Sendable {
    /// The plan the parts were made from (`OUTDIR/plan.json`).
    public var plan: ShardPlan
    /// Shards without a committed part that verifies, in order.
    public var missing: [Int]
    /// Why each missing shard is missing (`0: no part`, `3: ...`), for stderr.
    public var reasons: [String]
    /// Temporary files left by runs that were killed.
    public var stale: [String]
    /// The format of the parts (nil when none is there).
    public var format: String?
}

/// `imgconv merge OUTDIR OUT`: joins the parts that `to-* --plan --shard K/N` wrote into one
/// output, byte for byte what a one-machine run writes: every split's images are streamed from
/// the parts, in shard order, through the format's own writer (which hashes and checksums
/// them as they pass), and the manifest is the one-machine manifest (the plan's skips, then the
/// parts' own, split by split).
public struct ShardMerger {
    /// Compressing threads (`--compress` parts); the output does not depend on it.
    public var threads = 1
    public var jobs = ConversionOptions.defaultJobs
    /// HDF5 parts: the merged file maps the parts' images as virtual datasets (with paths relative
    /// to it; the parts must be in its folder or below) instead of copying them.
    public var virtual = true
    /// Told about outputs other readers may refuse (IDX of several channels).
    public var warn: @Sendable (String) -> Void = { _ in }

    public init() {}

    /// The plan a folder of parts holds (each shard puts a copy there).
    public static func planPath(_ folder: String) -> String { folder + "/plan.json" }

    /// Finds every shard's part, checks that it is of the folder's plan, and verifies it.
    /// - Throws: `.notFound` without a plan; `.corruptInput` for a part of another plan or
    ///   another shard count, or parts in two formats.
    /// - Parameter imageData: false leaves the parts' images data unread (see `merge`).
    public func check(folder: String, imageData: Bool = true) throws -> ShardCheck {
        try checkParts(folder: folder, imageData: imageData, keep: false).check
    }

    /// `check`; with `keep`, each shard's part as it was opened to verify it (nil for a missing
    /// one), else none (a part's manifest is let go once it is checked).
    func checkParts(folder: String, imageData: Bool, keep: Bool) throws -> (check: ShardCheck, parts: [LabeledDataset?]) {
        let plan = try ShardPlan.load(Self.planPath(folder))
        let entries = listFolder(folder)
        let stale = staleTemporaries(dir: folder)
        var byShard: [Int: [String]] = [:]
        for name in entries.sorted(by: codePointLess) {
            guard name.hasPrefix("part-"), let (k, n) = Self.parsePartName(name) else { continue }
            guard n == plan.shards else {
                throw ImgConvError(.corruptInput, path: folder + "/" + name, "is a part of \(n) shards; the folder's plan has \(plan.shards)")
            }
            guard k < n else { throw ImgConvError(.corruptInput, path: folder + "/" + name, "shard \(k) of \(n) does not exist") }
            if name.hasSuffix(".manifest.json") { continue }
            byShard[k, default: []].append(name)
        }
        let formats = Set(byShard.values.joined().compactMap { $0.split(separator: ".").last.map(String.init) })
        guard formats.count <= 1 else {
            throw ImgConvError(.corruptInput, path: folder, "holds parts in several formats (\(formats.sorted().joined(separator: ", ")))")
        }
        var missing: [Int] = [], reasons: [String] = []
        var opened = [LabeledDataset?](repeating: nil, count: plan.shards)
        for k in 0..<plan.shards {
            guard let name = byShard[k]?.first else {
                missing.append(k)
                reasons.append("\(k): no part")
                continue
            }
            let path = folder + "/" + name
            guard let format = ContainerFormat.named(String(name.split(separator: ".").last!)),
                  access(format.manifestPath(path), F_OK) == 0 else {
                missing.append(k)
                reasons.append("\(k): '\(name)' has no manifest (not committed)")
                continue
            }
            let (reason, dataset) = try Self.partProblem(path, shard: k, of: plan, jobs: jobs, imageData: imageData)
            if let reason {
                missing.append(k)
                reasons.append("\(k): \(reason)")
            }
            if keep { opened[k] = dataset }
        }
        return (ShardCheck(plan: plan, missing: missing, reasons: reasons, stale: stale, format: formats.first), opened)
    }

    /// Why the committed part at `path` cannot stand for shard `k` of `plan` (it does not
    /// verify), or nil when it can.
    /// - Throws: `.corruptInput` when it is a part of another plan or another shard.
    /// The part, as opened, comes back with the answer.
    static func partProblem(_ path: String, shard k: Int, of plan: ShardPlan, jobs: Int,
                            imageData: Bool = true) throws -> (problem: String?, dataset: LabeledDataset?) {
        let dataset: LabeledDataset
        do { dataset = try LabeledDataset(path: path) } catch let e as ImgConvError { return (e.message, nil) }
        guard let shard = dataset.manifest?.shard else {
            throw ImgConvError(.corruptInput, path: path, "its manifest records no shard: not a part")
        }
        guard shard.planHash == plan.hash else {
            throw ImgConvError(.corruptInput, path: path, "is a part of another plan (hash \(shard.planHash.prefix(12)), the folder's plan \(plan.hash.prefix(12)))")
        }
        guard shard.index == k, shard.count == plan.shards else {
            throw ImgConvError(.corruptInput, path: path, "its manifest says shard \(shard.index) of \(shard.count), its name \(k) of \(plan.shards)")
        }
        var verifier = Verifier(jobs: jobs)
        verifier.imageDataCheckedByCaller = !imageData
        verifier.knownPlan = plan   // the plan of the part's folder, already loaded and checked
        verifier.knownDataset = dataset
        do { _ = try verifier.verify(path: path) } catch let e as ImgConvError { return ("does not verify: \(e.message)", nil) }
        return (nil, dataset)
    }

    /// Whether the committed part at `path` is shard `k` of `plan` and verifies.
    public static func partIsDone(_ path: String, shard k: Int, of plan: ShardPlan, jobs: Int) throws -> Bool {
        try partProblem(path, shard: k, of: plan, jobs: jobs).problem == nil
    }

    /// The `--prefix` an IDX part was written with: the start of its train images file's name.
    static func idxPrefix(_ part: String) -> String? {
        let names = listFolder(part).filter { $0.contains("-images-idx") && !$0.hasPrefix("val-") && !$0.hasPrefix("t10k-") }
        guard names.count == 1, let cut = names[0].firstRange(of: "-images-idx") else { return nil }
        return String(names[0][..<cut.lowerBound])
    }

    /// The path of `folder` relative to `base` (`""` or ending in `/`), when `folder` is `base`
    /// or below it: where a virtual dataset in `base` finds the parts.
    /// - Throws: `.invalidArgument` otherwise.
    static func relativeFolder(_ folder: String, from base: String) throws -> String {
        guard let f = realpath(folder, nil), let b = realpath(base, nil) else {
            throw ImgConvError(.notFound, path: folder, "cannot resolve the folder")
        }
        defer { free(f); free(b) }
        let target = String(cString: f), root = String(cString: b)
        if target == root { return "" }
        let prefix = root == "/" ? "/" : root + "/"
        guard target.hasPrefix(prefix) else {
            throw ImgConvError(.invalidArgument, path: folder,
                               "merge --virtual: the parts must be in the merged file's folder or below it (readers refuse sources elsewhere); move them, or use --materialize")
        }
        return String(target.dropFirst(prefix.count)) + "/"
    }

    /// `part-0000k-of-0000n.<ext>` (or its manifest) -> (k, n).
    static func parsePartName(_ name: String) -> (Int, Int)? {
        let fields = name.split(separator: ".")[0].split(separator: "-")
        guard fields.count == 4, fields[0] == "part", fields[2] == "of", let k = Int(fields[1]), let n = Int(fields[3]) else { return nil }
        return (k, n)
    }

    /// Merges every part of `folder` into `output`.
    /// - Throws: `.notFound` naming the missing shards (`missing: 3,7`), what `check` throws,
    ///   the writer's errors; nothing is left at `output` then.
    public func merge(folder: String, output: String) throws -> ConversionSummary {
        let start = Date()
        // The parts' images are verified while they are copied below (read once, not twice).
        let (found, opened) = try checkParts(folder: folder, imageData: false, keep: true)
        guard found.missing.isEmpty else {
            throw ImgConvError(.notFound, path: folder, "missing: " + found.missing.map(String.init).joined(separator: ","))
        }
        let plan = found.plan
        guard let formatName = found.format, let format = ContainerFormat.named(formatName) else {
            throw ImgConvError(.notFound, path: folder, "holds no parts")
        }
        // As `check` opened and verified them (each manifest parsed once).
        let parts = try (0..<plan.shards).map { k in
            try opened[k] ?? LabeledDataset(path: folder + "/" + ShardPlan.partName(k, of: plan.shards, format: format.name))
        }
        let manifests = parts.map { $0.manifest! }
        var options = plan.options
        options.compress = manifests[0].options.compress
        guard manifests.allSatisfy({ $0.options == options && $0.output.format == format.name }) else {
            throw ImgConvError(.corruptInput, path: folder, "its parts were written with different options")
        }
        var settings = WriterSettings()
        settings.threads = threads
        settings.warn = warn
        if format.name == "idx" {
            settings.gzip = options.compress
            settings.prefix = Self.idxPrefix(parts[0].path) ?? settings.prefix
        } else {
            settings.compress = options.compress
        }
        let writer = format.makeWriter(path: output, settings: settings)
        try writer.checkTargets()
        try refuseOutputsAmongInputs(writer.outputFiles, inputs: parts.flatMap { FormatConverter.inputFiles(of: $0, labelsFile: nil) })
        writer.labelEncoding = try ConversionOptions(manifest: options).labelEncoding(classCount: plan.classes.count)
        let hdf5 = virtual ? writer as? HDF5Writer : nil
        let partsFromOutput = try hdf5.map { _ in try Self.relativeFolder(folder, from: parentFolder(output)) }
        var out = OutputManifest(writer: writer, classCount: plan.classes.count)
        var fileAt = [Int](repeating: 0, count: parts.count)   // next entry of each part's `files`
        var skipAt = [Int](repeating: 0, count: parts.count)   // next entry of each part's `skipped`
        var decodeSkipped: [SkippedFile] = []
        let layout = TensorLayout(plan: plan.image)
        do {
            for split in plan.splits {
                writer.names = TensorNames(prefix: split.name)
                let pieces = try parts.map { part in
                    guard let piece = part.split(named: split.name) else {
                        throw ImgConvError(.corruptInput, path: part.path, "holds no '\(split.name)' split")
                    }
                    return piece
                }
                if let hdf5, let partsFromOutput {
                    hdf5.virtualSources = pieces.enumerated().map { k, piece in
                        .init(file: partsFromOutput + ShardPlan.partName(k, of: plan.shards, format: format.name),
                              dataset: piece.imagesName, rows: piece.count)
                    }
                }
                try writer.begin(plan: plan.image, count: plan.announcedCount ?? split.items.count)
                var labels = PagedArray<Int32>()
                for (k, part) in parts.enumerated() {
                    let piece = pieces[k]
                    let m = manifests[k]
                    guard fileAt[k] + piece.count <= m.files.count else {
                        throw ImgConvError(.corruptInput, path: part.path, "its manifest lists fewer files than its tensors hold")
                    }
                    guard let record = m.tensors.first(where: { $0.name == piece.imagesName }) else {
                        throw ImgConvError(.corruptInput, path: part.path, "its manifest records no '\(piece.imagesName)'")
                    }
                    // The part's checksum is of its own manifest's version (Manifest.decode checked
                    // that the record has it).
                    let algorithm = m.tensorHash ?? .current
                    let expected = record.digest(algorithm) ?? ""
                    let digest = try FormatConverter.copyImages(of: piece, in: part, layout: layout, to: writer, hashing: algorithm)
                    // As `check` reports a part that does not verify: a shard to run again.
                    guard digest == expected else {
                        throw ImgConvError(.notFound, path: folder, "missing: \(k) (\(part.path.split(separator: "/").last ?? ""): "
                                           + "does not verify: \(part.storageName(piece.imagesName)): \(algorithm.displayName) of the data is \(digest ?? ""), its manifest says \(expected))")
                    }
                    for label in try part.labels(piece) { labels.append(Int32(label)) }
                    for record in m.files[fileAt[k]..<(fileAt[k] + piece.count)] { try out.add(record) }
                    fileAt[k] += piece.count
                    let skips = m.shard!.skippedBySplit[split.name] ?? 0
                    guard skipAt[k] + skips <= m.skipped.count else {
                        throw ImgConvError(.corruptInput, path: part.path, "its manifest's skipped files do not match its shard record")
                    }
                    decodeSkipped += m.skipped[skipAt[k]..<(skipAt[k] + skips)]
                    skipAt[k] += skips
                }
                out.tensors += try writer.endPart(labels: LabelColumn(labels))
                out.splitSizes[split.name] = labels.count
            }
            out.tensors += try writer.finish(classNames: plan.classes)
            let skipped = plan.skipped + decodeSkipped
            let named = plan.splits.count > 1 || plan.splits.first?.name != "train"
            let outputName = output.split(separator: "/").last.map(String.init) ?? output
            try out.commit(writer, .init(root: plan.source.root, kind: plan.source.kind, outputName: outputName,
                                         formatName: format.name, options: options, classNames: plan.classes,
                                         skipped: skipped, warnings: plan.warnings, ignoredPages: plan.ignoredTiffPages,
                                         ignoredFrames: plan.ignoredFrames, named: named, shard: nil))
            return ConversionSummary(images: out.images, classes: plan.classes.count, skipped: skipped.count,
                                     shape: out.tensors[0].shape, dtype: plan.image.dtype,
                                     seconds: Date().timeIntervalSince(start), outputBytes: 0, manifestPath: writer.manifestPath)
        } catch {
            writer.abort()
            throw error
        }
    }
}
