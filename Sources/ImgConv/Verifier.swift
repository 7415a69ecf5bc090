import FoundationEssentials
import Glibc
import ImgConvCodecs
import ImgConvCore
import ImgConvFormats

/// What `verify` checked.
public struct VerificationReport: Sendable {
    public var checks: [String] = []
}

/// Re-reads an output through the project's own readers and checks it against its manifest:
/// container structure and CRCs, NPY headers, shapes and dtypes, label range, class names and
/// tensor checksums; with `against`, re-decodes every source image and compares pixels exactly.
public struct Verifier {
    public var jobs: Int
    /// Leaves the images tensors' data (`*Xs`) unread: their headers, dtypes and shapes are still
    /// checked, their checksum is left to the caller, which reads the data anyway (`merge`
    /// verifies each part's images while copying them, so that they are read once).
    var imageDataCheckedByCaller = false
    /// The plan beside the part being verified, when the caller has it already (`merge`).
    var knownPlan: ShardPlan?
    /// The part itself, opened by the caller (`merge`, which copies from it next).
    var knownDataset: LabeledDataset?

    public init(jobs: Int = ConversionOptions.defaultJobs) { self.jobs = jobs }

    /// Checks an `.npz`, an `.npy` folder, an `.h5` file or an IDX pair (the images file, or the
    /// folder holding it) against its manifest.
    /// - Parameters:
    ///   - labels: the IDX labels file when MNIST's naming does not find it.
    ///   - prefix: picks the IDX pair in a folder holding several.
    /// - Throws: `ImgConvError` `.verificationFailed` (or `.corruptInput`) naming the file, the
    ///   tensor or member, and what differs.
    public func verify(path: String, against root: String? = nil, labels: String? = nil, prefix: String? = nil) throws -> VerificationReport {
        var read = DatasetReadOptions()
        read.labelsFile = labels
        read.prefix = prefix
        return try verify(path: path, against: root, read: read)
    }

    /// The same, with the read options of every read command (`--xs`/`--ys` for foreign names).
    public func verify(path: String, against root: String? = nil, read: DatasetReadOptions) throws -> VerificationReport {
        var report = VerificationReport()
        let dataset = try knownDataset ?? LabeledDataset(path: path, options: read)
        let container = dataset.container
        let (manifest, manifestSource) = try Self.loadManifest(dataset)
        report.checks.append("\(container.formatName) container; manifest \(manifestSource) parsed (\(manifest.tensors.count) tensors, \(manifest.files.count) files)")
        func fail(_ name: String, _ why: String) -> ImgConvError {
            ImgConvError(.verificationFailed, path: path, "\(container.storageName(name)): \(why)")
        }

        let classCount = manifest.classes.count
        var pairs = manifest.tensors.map(\.name).filter { $0.hasSuffix("Xs") }.map { String($0.dropLast(2)) }
        // --xs/--ys: only that pair (and the class names) is checked, and it must be the manifest's.
        var records = manifest.tensors
        if let xs = read.xs, let ys = read.ys {
            guard xs.hasSuffix("Xs"), ys == xs.dropLast(2) + "Ys", pairs.contains(String(xs.dropLast(2))) else {
                throw ImgConvError(.verificationFailed, path: path, "the manifest records no pair '\(xs)'/'\(ys)' (it records \(pairs.map { $0 + "Xs" }.joined(separator: ", ")))")
            }
            pairs = [String(xs.dropLast(2))]
            records = records.filter { $0.name == xs || $0.name == ys || !($0.name.hasSuffix("Xs") || $0.name.hasSuffix("Ys")) }
        }
        guard !pairs.isEmpty else {
            throw ImgConvError(.verificationFailed, path: path, "the manifest records no images tensor (trainXs)")
        }
        for prefix in pairs where !manifest.tensors.contains(where: { $0.name == prefix + "Ys" }) {
            throw ImgConvError(.verificationFailed, path: path, "the manifest records no '\(prefix)Ys' for '\(prefix)Xs'")
        }
        if read.xs == nil { try checkCompleteness(dataset, manifest: manifest, pairs: pairs, path: path, report: &report) }
        let onehot = manifest.options.labels == "onehot"
        // Version 1 manifests record SHA-256s, version 2 the chunked XXH3-128 (Manifest.decode
        // refused any other version, and a record without its version's checksum).
        let algorithm = manifest.tensorHash ?? .current
        var shapes: [String: [Int]] = [:]
        for record in records {
            let (header, stream) = try container.open(record.name)
            let dtype = DType(npyDescr: header.descr)?.rawValue ?? header.descr
            guard dtype == record.dtype else { throw fail(record.name, "dtype is \(dtype), manifest says \(record.dtype)") }
            guard header.shape == record.shape else { throw fail(record.name, "shape is \(header.shape), manifest says \(record.shape)") }
            shapes[record.name] = header.shape
            var hash = TensorHasher(algorithm)
            var scratch: [UInt8] = []
            var labelCheck = record.name.hasSuffix("Ys")
                ? LabelRangeCheck(dtype: DType(npyDescr: header.descr), classCount: classCount, onehot: onehot) : nil
            var classNameBytes: [UInt8] = []
            let isClassNames = record.name == "classNames"
            if imageDataCheckedByCaller && record.name.hasSuffix("Xs") {
                report.checks.append("\(container.storageName(record.name)): header, \(dtype) \(header.shape) match (data checked by the caller)")
                continue
            }
            do {
                // A stored tensor is hashed where it lies (memory-mapped), others through `scratch`.
                while try stream.next(1 << 20, scratch: &scratch, { chunk in
                    hash.update(chunk)
                    labelCheck?.update(chunk)
                    if isClassNames { classNameBytes.append(contentsOf: chunk) }
                    return chunk.count
                }) > 0 {}
            } catch let e as ImgConvError {
                throw e.path == nil ? ImgConvError(e.code, path: path, "\(container.storageName(record.name)): \(e.message)") : e
            }
            if let labelError = labelCheck?.error { throw fail(record.name, labelError) }
            let digest = hash.finish()
            let expected = record.digest(algorithm) ?? ""
            guard digest == expected else {
                throw fail(record.name, "\(algorithm.displayName) of the data is \(digest), manifest says \(expected)")
            }
            if isClassNames {
                let names = decodeUnicodeArray(classNameBytes, descr: header.descr, count: header.shape.first ?? 0)
                guard names == manifest.classes.map(\.name) else {
                    throw fail(record.name, "class names \(names) differ from the manifest's")
                }
            }
            report.checks.append("\(container.storageName(record.name)): header, \(dtype) \(header.shape), data and \(algorithm.displayName) match")
        }
        for prefix in pairs {
            let x = shapes[prefix + "Xs"], y = shapes[prefix + "Ys"]
            guard x?.first == y?.first else { throw fail(prefix + "Ys", "has \(y?.first ?? 0) labels for \(x?.first ?? 0) images") }
            if let expected = manifest.summary.splits?[prefix], expected != x?.first {
                throw fail(prefix + "Xs", "holds \(x?.first ?? 0) images, the manifest's split '\(prefix)' has \(expected)")
            }
            report.checks.append("\(prefix)Xs and \(prefix)Ys agree on N = \(x?.first ?? 0)")
        }
        try checkLeaks(manifest, path: path, report: &report)
        if let shard = manifest.shard { try checkAgainstPlan(manifest, shard, path: path, report: &report) }
        if let names = try container.classNames() {
            guard names == manifest.classes.map(\.name) else {
                throw fail("classNames", "holds \(names.count) class names \(names.prefix(5)), the manifest lists \(classCount) classes \(manifest.classes.prefix(5).map(\.name))")
            }
            report.checks.append("labels lie in [0, \(classCount)); \(classCount) class names match the manifest")
        } else {
            report.checks.append("labels lie in [0, \(classCount)); the \(classCount) class names are in the manifest only (\(container.formatName) has no place for them)")
        }
        if let root {
            try compareSources(container: container, manifest: manifest, pairs: pairs, root: root, path: path)
            report.checks.append("every image equals a fresh decode of its source under '\(root)'")
        }
        return report
    }

    /// Every split the manifest lists is in the container, and the container holds no pair the
    /// manifest does not list: a file that lost a split (or gained one) fails, naming it.
    private func checkCompleteness(_ dataset: LabeledDataset, manifest: Manifest, pairs: [String], path: String,
                                   report: inout VerificationReport) throws {
        let held = Set(dataset.splits.map(\.imagesName))
        let listed = Set(pairs.map { $0 + "Xs" })
        for name in pairs.map({ $0 + "Xs" }) where !held.contains(name) {
            throw ImgConvError(.verificationFailed, path: path,
                               "the split '\(String(name.dropLast(2)))' (\(name)) is listed in the manifest but missing from the container")
        }
        for split in (manifest.summary.splits ?? [:]).keys.sorted() where !listed.contains(split + "Xs") {
            throw ImgConvError(.verificationFailed, path: path, "the manifest counts a split '\(split)' but records no tensor '\(split)Xs' for it")
        }
        for split in dataset.splits where !listed.contains(split.imagesName) {
            throw ImgConvError(.verificationFailed, path: path,
                               "holds the pair '\(split.imagesName)'/'\(split.labelsName)' (split '\(split.name)'), which the manifest does not list")
        }
        report.checks.append("the container holds exactly the manifest's \(pairs.count) split\(pairs.count == 1 ? "" : "s") (\(pairs.joined(separator: ", ")))")
    }

    /// The manifest beside (or inside) a container, as the dataset read it. An HDF5 file carries
    /// it as an attribute too: the two must be identical, and the attribute stands in when the
    /// sidecar is missing.
    static func loadManifest(_ dataset: LabeledDataset) throws -> (Manifest, String) {
        let container = dataset.container
        let embedded = try container.embeddedManifest()
        guard let bytes = dataset.manifestFileBytes, let manifest = dataset.manifest else {
            if embedded != nil, let manifest = dataset.manifest {
                return (manifest, "attribute '\(HDF5Writer.manifestAttribute)'")
            }
            throw ImgConvError(.notFound, path: container.manifestPath, "manifest does not exist (verify needs the manifest written with the output)")
        }
        if let embedded, embedded != bytes {
            throw ImgConvError(.verificationFailed, path: container.path,
                               "attribute '\(HDF5Writer.manifestAttribute)' differs from the manifest '\(container.manifestPath)'")
        }
        return (manifest, "'\(container.manifestPath)'" + (embedded == nil ? "" : " (equal to the embedded copy)"))
    }

    /// A split dataset must not hold one source file, or two files of identical content, in two
    /// splits: that would leak test images into training.
    private func checkLeaks(_ manifest: Manifest, path: String, report: inout VerificationReport) throws {
        let split = manifest.files.filter { $0.split != nil }
        guard !split.isEmpty else { return }
        var byPath: [String: String] = [:], byContent: [String: (String, String)] = [:]
        for f in split {
            let s = f.split!
            if let other = byPath[f.path], other != s {
                throw ImgConvError(.verificationFailed, path: path, "leak: '\(f.path)' is in both '\(other)' and '\(s)'")
            }
            byPath[f.path] = s
            if let (otherPath, otherSplit) = byContent[f.sha256], otherSplit != s {
                throw ImgConvError(.verificationFailed, path: path,
                                   "leak: '\(f.path)' (\(s)) and '\(otherPath)' (\(otherSplit)) have identical content")
            }
            byContent[f.sha256] = (f.path, s)
        }
        report.checks.append("no source file and no identical content in two splits")
    }

    private func compareSources(container: TensorContainer, manifest: Manifest, pairs: [String], root: String, path: String) throws {
        for record in manifest.tensors where record.name.hasSuffix("Xs") && pairs.contains(String(record.name.dropLast(2))) {
            let prefix = String(record.name.dropLast(2))
            let files = manifest.files.filter { ($0.split ?? "train") == prefix }
            try compareSources(container: container, manifest: manifest, record: record, files: files, root: root, path: path)
        }
    }

    private func compareSources(container: TensorContainer, manifest: Manifest, record: Manifest.TensorRecord,
                                files: [Manifest.FileRecord], root: String, path: String) throws {
        let plan = try manifest.options.imagePlan(for: record, path: path)
        let storedBytes = plan.bytesPerImage
        let (_, stream) = try container.open(record.name)
        let decoders = Decoders(options: manifest.options.decodeOptions)
        let resize = manifest.options.size != nil
        let flow = pipelineFlow(bytesPerImage: storedBytes, jobs: jobs)
        var scratch: [UInt8] = []
        try runOrderedPipeline(
            count: files.count, jobs: jobs, window: flow.window, batch: flow.batch,
            work: { i -> DecodedImage in
                let f = files[i]
                guard let format = ImageFormat(rawValue: f.format) else {
                    throw ImgConvError(.verificationFailed, path: f.path, "unknown format '\(f.format)' in the manifest")
                }
                let source = SourceFile(relativePath: f.path, path: root + "/" + f.path, label: f.label)
                return try DecodeJob.run(source, format: format, header: nil, decoders: decoders,
                                         plan: plan, resize: resize, page: f.page ?? 0)
            },
            consume: { i, result in
                let decoded = try result.get()
                let fresh = decoded.pixels
                let same = try stream.next(storedBytes, scratch: &scratch) { stored in
                    stored.count == fresh.count
                        && fresh.withUnsafeBytes { stored.count == 0 || memcmp($0.baseAddress!, stored.baseAddress!, stored.count) == 0 }
                }
                guard same else {
                    let changed = decoded.sha256 != files[i].sha256 ? " (the source file changed since the conversion)" : ""
                    throw ImgConvError(.verificationFailed, path: path,
                                       "\(record.name) image \(i) differs from a fresh decode of '\(files[i].path)'\(changed)")
                }
            })
    }
}

/// Checks that every label (of any integer type, little-endian) lies in [0, classCount), over
/// data that arrives in pieces.
struct LabelRangeCheck {
    let dtype: DType?
    let classCount: Int
    /// One-hot rows: every value 0 or 1, exactly one 1 per row of `classCount`.
    let onehot: Bool
    private var carry: [UInt8] = []
    private var position = 0
    private var rowSum: Int64 = 0
    private(set) var error: String?

    init(dtype: DType?, classCount: Int, onehot: Bool = false) {
        self.dtype = dtype
        self.classCount = classCount
        self.onehot = onehot
        if let dtype, dtype.isFloatingPoint && !onehot { error = "labels have the floating-point dtype \(dtype.rawValue)" }
        if dtype == nil { error = "labels have an unknown dtype" }
    }

    mutating func update(_ chunk: UnsafeRawBufferPointer) {
        guard error == nil, let dtype else { return }
        let size = dtype.byteSize
        carry.append(contentsOf: chunk)
        let whole = carry.count / size * size
        for k in stride(from: 0, to: whole, by: size) {
            var raw: UInt64 = 0
            for b in 0..<size { raw |= UInt64(carry[k + b]) << (8 * UInt64(b)) }
            let v: Int64
            if dtype.isFloatingPoint {
                // One-hot rows of floats: each value exactly 0.0 or 1.0.
                let d = carry.withUnsafeBytes { dtype.value(in: $0, at: k) }
                guard d == 0 || d == 1 else { error = "one-hot label value \(d) is not 0 or 1"; break }
                v = Int64(d)
            } else if dtype.isSigned && size < 8 && raw >> (8 * UInt64(size) - 1) & 1 == 1 {
                v = Int64(bitPattern: raw | ~((1 << (8 * UInt64(size))) - 1))
            } else {
                v = Int64(bitPattern: raw)
            }
            if onehot {
                if v != 0 && v != 1 { error = "one-hot label value \(v) is not 0 or 1"; break }
                rowSum += v
                position += 1
                if position == classCount {
                    if rowSum != 1 { error = "a one-hot label row holds \(rowSum) ones"; break }
                    position = 0
                    rowSum = 0
                }
            } else if v < 0 || v >= classCount { error = "label \(v) is outside [0, \(classCount))"; break }
        }
        carry.removeFirst(whole)
    }
}
