import FoundationEssentials
import Glibc
import ImgConvCodecs
import ImgConvCore

/// What `check` found in a dataset (`Schemas/check.schema.json`). Every list is in dataset order,
/// so the same inputs and options give the same report whatever the thread count.
public struct CheckReport: Codable, Sendable {
    public struct FileIssue: Codable, Sendable, Equatable {
        public var path: String
        public var reason: String
    }
    public struct ExtensionMismatch: Codable, Sendable, Equatable {
        public var path: String
        /// The format the file's name suggests, and the one its bytes are.
        public var named: String
        public var format: String
    }
    public struct Problems: Codable, Sendable {
        /// Files the decoders reject (corrupt, truncated), with their reason.
        public var decodeFailures: [FileIssue] = []
        public var extensionMismatches: [ExtensionMismatch] = []
        /// Recognised formats imgconv does not read (JPEG 2000, ICO, PSD).
        public var unsupported: [FileIssue] = []
        /// Files that are no image at all (or empty).
        public var notImages: [FileIssue] = []
        /// Files the options refuse: over --max-pixels, several pages or frames with `error`.
        public var refused: [FileIssue] = []
        /// What the scan left out (links walked twice, pseudo filesystems, bad names with --skip-bad).
        public var skipped: [FileIssue] = []
        /// Why the conversion with these options would stop (a size that differs without
        /// --size, channels that disagree with --color keep, float images for an integer dtype).
        public var conversionRefusal: String?
    }
    public struct Orientation: Codable, Sendable {
        /// Images that their EXIF/TIFF orientation turns (or mirrors) when converted.
        public var rotated = 0
        public var examples: [String] = []
        /// Orientation values outside 1...8 (read as 1, no rotation).
        public var malformed: [FileIssue] = []
    }
    /// A histogram and what the conversion decides from it.
    public struct Decision: Codable, Sendable {
        public var histogram: [String: Int] = [:]
        /// The option as given (`auto`, `rgb`, a `--size`, ...).
        public var option: String
        /// What the tensor gets: `gray`/`rgb`/..., a dtype, a size HxW.
        public var decision: String
        /// The first files that force the decision (colour among gray, the widest samples, the
        /// image whose size all must have).
        public var forcedBy: [String] = []
        /// The first files that go against it: images converted away from their own channels or
        /// samples, sizes that differ (refused without --size, resized with it).
        public var against: [String] = []
        public var againstCount = 0
    }
    public struct SimilarNames: Codable, Sendable {
        public var names: [String]
        /// `case` (they differ in letter case) or `normalization` (the same text in other
        /// Unicode normalization forms).
        public var kind: String
    }
    public struct NumericOrder: Codable, Sendable {
        /// The classes whose names are numbers, in the order (labels) they get.
        public var order: [String]
        /// Every class in the order `--sort natural` gives.
        public var natural: [String]
    }
    public struct ClassFindings: Codable, Sendable {
        public var count: Int
        public var empty: [String] = []
        public var numericOrder: NumericOrder?
        public var similarNames: [SimilarNames] = []
    }
    public struct ClassCount: Codable, Sendable {
        public var index: Int
        public var name: String
        public var count: Int
    }
    public struct SplitCount: Codable, Sendable {
        public var name: String
        public var count: Int
        /// Per class, in label order.
        public var classes: [Int]
    }
    public struct Balance: Codable, Sendable {
        public var classes: [ClassCount] = []
        public var splits: [SplitCount] = []
        /// Largest over smallest class among those with images; nil with fewer than one.
        public var ratio: Double?
        public var largest: String?
        public var smallest: String?
    }
    public struct Member: Codable, Sendable {
        public var path: String
        public var split: String?
    }
    public struct Group: Codable, Sendable {
        public var files: [Member]
        /// The group spans splits: the same content would be trained on and tested on.
        public var leak: Bool
        /// Near duplicates: the largest Hamming distance between two of its perceptual hashes.
        public var maxDistance: Int?
    }
    public struct Duplicates: Codable, Sendable {
        /// Hashes at most this many bits apart are near duplicates.
        public var threshold: Int
        public var bytes: [Group] = []
        /// The same decoded pixels from files whose bytes differ.
        public var pixels: [Group] = []
        /// Perceptual-hash neighbours whose pixels differ (resized, re-compressed copies).
        public var near: [Group] = []
    }
    /// How many of each kind `--fail-on` can name.
    public struct Counts: Codable, Sendable {
        public var corrupt = 0
        public var mismatch = 0
        public var unsupported = 0
        public var refused = 0
        public var orientation = 0
        public var names = 0
        public var empty = 0
        public var duplicates = 0
        public var near = 0
        public var leak = 0
        public var imbalance: Double?
    }

    public var tool: Manifest.Tool
    public var source: Manifest.Source
    public var options: Manifest.Options
    public var files: Int
    public var images: Int
    public var problems = Problems()
    public var orientation = Orientation()
    public var channels: Decision
    public var depths: Decision
    public var sizes: Decision
    public var classes: ClassFindings
    public var balance = Balance()
    public var duplicates: Duplicates
    public var counts = Counts()
    public var warnings: [String] = []
}

/// `imgconv check`: reads every image of a dataset once, as a conversion with the same options
/// would (scan, header pass, decode with the same limits, in parallel and in order), writes no
/// tensor, and reports what would go wrong or mislead (see `CheckReport`).
public struct Checker {
    public var options: ConversionOptions
    /// Hamming distance (of 63 bits) at or under which two perceptual hashes are near
    /// duplicates (README, "check": measured on resized and re-compressed copies).
    public var threshold = PerceptualHash.defaultThreshold
    public var warn: (String) -> Void = { _ in }
    /// (files done, files in all, files left out so far: not decoded, unsupported, no image, refused).
    public var progress: (Int, Int, Int) -> Void = { _, _, _ in }
    /// The first files a list of examples names.
    public static let examples = 10

    public init(options: ConversionOptions) { self.options = options }

    /// What one file gives: its images' headers, and the hashes of its first image.
    enum Outcome {
        case image(found: [Candidate], hashes: Hashes, malformedOrientation: Int?)
        case skip(String)
        case bad(ImgConvError, decoding: Bool, format: ImageFormat?)
    }

    struct Hashes {
        var bytes: Digest
        var pixels: Digest
        var perceptual: UInt64
    }

    /// What is kept of each image read (hashes, not pixels).
    struct Kept {
        var file: Int32
        var bytes: Digest
        var pixels: Digest
        var perceptual: UInt64
    }

    public func check(source: DatasetSource) throws -> CheckReport {
        let (scan, root) = try Converter(options: options).scan(source)
        scan.warnings.forEach(warn)
        let headers = HeaderPass(decoders: Decoders(options: options.decode), tiffPages: options.tiffPages, frames: options.frames)
        var report = CheckReport(
            tool: .init(name: ToolInfo.name, version: ToolInfo.version),
            source: .init(root: root, kind: source.kind), options: options.manifestOptions(),
            files: scan.files.count, images: 0,
            channels: .init(option: options.shaping.color.rawValue, decision: ""),
            depths: .init(option: options.shaping.dtype.rawValue, decision: ""),
            sizes: .init(option: options.shaping.size.map { "\($0.height)x\($0.width)" } ?? "first image", decision: ""),
            classes: .init(count: scan.classes.count), duplicates: .init(threshold: threshold))
        report.warnings = scan.warnings
        report.problems.skipped = scan.skipped.map { .init(path: $0.path, reason: $0.reason) }
        var candidates = CandidateList(files: scan.files)
        var kept = PagedArray<Kept>()
        var done = 0
        try runOrderedPipeline(count: scan.files.count, jobs: options.jobs, window: max(64, options.jobs * 16), batch: 4,
                               work: { examine(scan.files[$0], headers: headers) },
                               consume: { i, r in
            done += 1
            defer {
                let p = report.problems
                progress(done, scan.files.count, p.decodeFailures.count + p.unsupported.count + p.notImages.count + p.refused.count)
            }
            let path = scan.files.relativePath(at: i)
            switch try r.get() {
            case .skip(let reason):
                if reason.hasPrefix("unsupported format") {
                    if let named = ImageFormat(rawValue: reason.dropFirst("unsupported format: ".count).lowercased()) {
                        noteExtension(path, named, &report)
                    }
                    report.problems.unsupported.append(.init(path: path, reason: reason))
                } else {
                    report.problems.notImages.append(.init(path: path, reason: reason))
                }
            case .bad(let e, let decoding, let format):
                guard !e.isHostFault else { throw e }
                if let format { noteExtension(path, format, &report) }
                if e.code == .limitExceeded || (!decoding && e.code == .unsupported
                                                && (e.message.contains("--tiff-pages") || e.message.contains("--frames"))) {
                    report.problems.refused.append(.init(path: path, reason: e.message))
                } else if e.code == .unsupported && !decoding {
                    report.problems.unsupported.append(.init(path: path, reason: e.message))
                } else {
                    report.problems.decodeFailures.append(.init(path: path, reason: e.message))
                }
            case .image(let found, let hashes, let malformed):
                noteExtension(path, found[0].format, &report)
                if let malformed {
                    report.orientation.malformed.append(.init(path: path, reason: "orientation \(malformed) is not 1-8 (read as 1: not turned)"))
                }
                for c in found {
                    candidates.append(fileIndex: i, c)
                    if c.header.orientation > 1 {
                        report.orientation.rotated += 1
                        if report.orientation.examples.count < Self.examples { report.orientation.examples.append(path) }
                    }
                }
                kept.append(Kept(file: Int32(i), bytes: hashes.bytes, pixels: hashes.pixels, perceptual: hashes.perceptual))
            }
        })
        report.images = candidates.count
        decide(candidates, &report)
        var counts = [Int](repeating: 0, count: scan.classes.count)
        for i in candidates.indices { counts[candidates.label(at: i)] += 1 }
        report.classes = classFindings(scan.classes.map(\.name), counts: counts)
        classBalance(scan.classes.map(\.name), counts: counts, &report)
        let splits = try splitBalance(scan, candidates: candidates, &report)
        report.duplicates = duplicates(kept) { file in
            let code = splits?.codes[file] ?? 0
            return (scan.files.relativePath(at: file), code > 0 ? splits?.names[Int(code) - 1] : nil)
        }
        report.counts = tally(report)
        return report
    }

    /// Reads, decodes and hashes one file (its first page or frame; the headers of the others).
    func examine(_ file: SourceFile, headers: HeaderPass) -> Outcome {
        let (probe, whole, reading) = headers.load(file, readWhole: true)
        switch probe {
        case .skip(let reason): return .skip(reason)
        case .bad(let e): return .bad(e, decoding: false, format: nil)
        case .images(let found, _):
            let c = found[0]
            do {
                let bytes = try whole ?? headers.decoders.read(InputFile(file.path), format: c.format, header: c.header)
                let h = c.header
                let size = checkedByteCount([h.width, h.height, h.channels], elementSize: h.depth.byteSize) ?? Int.max / 4
                try MemoryCeiling.reserve(size, for: "decoding a \(h.width)x\(h.height) image")
                let image = try headers.decoders.decode(bytes, format: c.format, header: h, page: c.page, reading: reading)
                var pixels = SHA256Stream()
                pixels.update(Array("\(image.width)x\(image.height)x\(image.channels):\(image.depth.dtype.rawValue)\n".utf8))
                pixels.update(image.bytes)
                let malformed = c.format == .jpeg && options.decode.exifOrientation
                    ? ExifOrientation.jpegTag(bytes).flatMap { (1...8).contains($0) ? nil : $0 } : nil
                return .image(found: found, hashes: Hashes(bytes: Digest(sha256Bytes(bytes)), pixels: Digest(pixels.finishBytes()),
                                                           perceptual: PerceptualHash.hash(image)),
                              malformedOrientation: malformed)
            } catch let e as ImgConvError {
                return .bad(e.at(file.relativePath), decoding: true, format: c.format)
            } catch {
                return .bad(ImgConvError(.internal, path: file.relativePath, "\(error)"), decoding: true, format: c.format)
            }
        }
    }

    /// Formats a file name's extension stands for.
    static let extensions: [String: ImageFormat] = [
        "png": .png, "jpg": .jpeg, "jpeg": .jpeg, "jpe": .jpeg, "jfif": .jpeg, "tif": .tiff, "tiff": .tiff,
        "gif": .gif, "bmp": .bmp, "dib": .bmp, "webp": .webp, "avif": .avif, "heic": .heif, "heif": .heif,
        "jp2": .jpeg2000, "j2k": .jpeg2000, "ico": .ico, "psd": .psd,
    ]

    func noteExtension(_ path: String, _ format: ImageFormat, _ report: inout CheckReport) {
        let name = path.split(separator: "/").last.map(String.init) ?? path
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return }
        let ext = name[name.index(after: dot)...].lowercased()
        guard let named = Self.extensions[ext], named != format else { return }
        report.problems.extensionMismatches.append(.init(path: path, named: named.rawValue, format: format.rawValue))
    }

    /// The histograms of channels, sample depths and sizes, and what `--color`, `--dtype` and the
    /// size check decide from them; the conversion's own plan says whether it would stop.
    private func decide(_ candidates: CandidateList, _ report: inout CheckReport) {
        var channels: [String: Int] = [:], depths: [String: Int] = [:], sizes: [String: Int] = [:]
        for c in candidates {
            let h = c.header
            channels[String(h.channels), default: 0] += 1
            depths[h.depth.dtype.rawValue, default: 0] += 1
            sizes["\(h.orientedHeight)x\(h.orientedWidth)", default: 0] += 1
        }
        report.channels.histogram = channels
        report.depths.histogram = depths
        report.sizes.histogram = sizes
        func firsts(_ test: (Candidate) -> Bool) -> ([String], Int) {
            var names: [String] = [], count = 0
            for c in candidates where test(c) {
                count += 1
                // A file's pages or frames are consecutive: each file is named once.
                if names.count < Self.examples, names.last != c.file.relativePath { names.append(c.file.relativePath) }
            }
            return (names, count)
        }
        let request = options.shaping
        guard !candidates.isEmpty else {
            // No image: nothing is decided; the plan's refusal below says why.
            report.channels.decision = "none"
            report.depths.decision = "none"
            report.sizes.decision = "none"
            planRefusal(candidates, &report)
            return
        }
        // Channels.
        let allGray = candidates.allSatisfy { $0.header.isGray }
        switch request.color {
        case .auto:
            report.channels.decision = allGray ? "gray" : "rgb"
            if !allGray {
                report.channels.forcedBy = firsts { !$0.header.isGray }.0
                (report.channels.against, report.channels.againstCount) = firsts { $0.header.isGray }
            }
        case .keep:
            let first = candidates.first?.header.channels
            report.channels.decision = first.map { "keep (\($0) channels)" } ?? "keep"
            if let c = candidates.first { report.channels.forcedBy = [c.file.relativePath] }
            (report.channels.against, report.channels.againstCount) = firsts { $0.header.channels != first }
        default:
            report.channels.decision = request.color.rawValue
            let wanted = request.color == .gray ? 1 : request.color == .rgb ? 3 : 4
            (report.channels.against, report.channels.againstCount) = firsts { $0.header.channels != wanted }
        }
        // Sample types.
        let widest = candidates.reduce(SampleDepth.eight) { $0.joined($1.header.depth) }
        let depth = request.dtype.sampleDepth(widest: widest)
        report.depths.decision = request.dtype == .float16 ? "float16" : depth.dtype.rawValue
        // What --dtype auto widens to is forced by the files uint8 cannot hold.
        if request.dtype == .auto && widest != .eight { report.depths.forcedBy = firsts { $0.header.depth != .eight }.0 }
        (report.depths.against, report.depths.againstCount) = firsts { !depth.holds($0.header.depth) }
        // Sizes.
        if let size = request.size {
            report.sizes.decision = "\(size.height)x\(size.width)"
            (report.sizes.against, report.sizes.againstCount) = firsts { $0.header.orientedHeight != size.height || $0.header.orientedWidth != size.width }
        } else if let first = candidates.first {
            report.sizes.decision = "\(first.header.orientedHeight)x\(first.header.orientedWidth)"
            report.sizes.forcedBy = [first.file.relativePath]
            (report.sizes.against, report.sizes.againstCount) = firsts {
                $0.header.orientedHeight != first.header.orientedHeight || $0.header.orientedWidth != first.header.orientedWidth
            }
        }
        planRefusal(candidates, &report)
    }

    /// The conversion's own plan: the same refusal a to-* command would give.
    private func planRefusal(_ candidates: CandidateList, _ report: inout CheckReport) {
        do {
            _ = try ImagePlan.planning(candidates.lazy.map(\.header), name: { candidates[$0].file.relativePath },
                                       request: options.shaping, warn: { _ in })
        } catch let e as ImgConvError {
            report.problems.conversionRefusal = e.description
        } catch {
            report.problems.conversionRefusal = "\(error)"
        }
    }

    /// Empty classes, numeric names out of numeric order, names equal but for case or Unicode normalization.
    func classFindings(_ names: [String], counts: [Int]) -> CheckReport.ClassFindings {
        var f = CheckReport.ClassFindings(count: names.count)
        f.empty = names.indices.filter { counts[$0] == 0 }.map { names[$0] }
        let numeric = names.filter { !$0.isEmpty && $0.unicodeScalars.allSatisfy { ("0"..."9").contains($0) } }
        if options.classes == nil, numeric.count > 1 {
            let natural = numeric.sorted(by: naturalLess)
            if !natural.elementsEqual(numeric, by: { Array($0.unicodeScalars) == Array($1.unicodeScalars) }) {
                f.numericOrder = .init(order: numeric, natural: names.sorted(by: naturalLess))
            }
        }
        // Keys compared scalar by scalar (Swift's String equality already folds normalization).
        var groups: [[Unicode.Scalar]: [String]] = [:], order: [[Unicode.Scalar]] = []
        for name in names {
            let key = Array(nfc(name).lowercased().unicodeScalars)
            if groups[key] == nil { order.append(key) }
            groups[key, default: []].append(name)
        }
        for key in order {
            guard let members = groups[key], members.count > 1 else { continue }
            let composed = Set(members.map { nfc($0).unicodeScalars.map(\.value) })
            f.similarNames.append(.init(names: members, kind: composed.count == 1 ? "normalization" : "case"))
        }
        return f
    }

    /// A name in Unicode normalization form C (the standard library's own NFC, which its String
    /// comparison uses; FoundationEssentials has no `precomposedStringWithCanonicalMapping`).
    private func nfc(_ name: String) -> String { String(decoding: name._nfcCodeUnits, as: UTF8.self) }

    /// Images per class, and the largest/smallest ratio among classes with images.
    func classBalance(_ names: [String], counts: [Int], _ report: inout CheckReport) {
        report.balance.classes = names.indices.map { .init(index: $0, name: names[$0], count: counts[$0]) }
        let present = report.balance.classes.filter { $0.count > 0 }
        if let most = present.max(by: { $0.count < $1.count }), let least = present.min(by: { $0.count < $1.count }) {
            report.balance.ratio = Double(most.count) / Double(least.count)
            report.balance.largest = most.name
            report.balance.smallest = least.name
        }
    }

    /// Per split counts, and the split of every file (as the conversion would make it: split
    /// folders, the list's split column, or `--split`); nil without splits.
    private func splitBalance(_ scan: ScanResult, candidates: CandidateList, _ report: inout CheckReport) throws -> Splits? {
        guard scan.files.hasSplits || options.split != nil else { return nil }
        let parts = try SplitPlan.parts(count: candidates.count, label: { candidates.label(at: $0) },
                                        file: { candidates.fileIndex(at: $0) },
                                        split: { candidates[$0].file.split }, onDisk: scan.files.hasSplits,
                                        plan: options.split, shuffleSeed: nil, name: { candidates[$0].file.relativePath })
        var splitOf = [UInt8](repeating: 0, count: scan.files.count)   // 0: none, else part index + 1
        for (k, part) in parts.enumerated() {
            var perClass = [Int](repeating: 0, count: scan.classes.count)
            for item in part.items {
                perClass[candidates.label(at: Int(item))] += 1
                splitOf[candidates.fileIndex(at: Int(item))] = UInt8(k + 1)
            }
            report.balance.splits.append(.init(name: part.name, count: part.items.count, classes: perClass))
        }
        return Splits(codes: splitOf, names: parts.map(\.name))
    }

    /// The split of every file: 0 for none, else 1 + the index of its name.
    struct Splits {
        var codes: [UInt8]
        var names: [String]
    }

    /// Byte-identical files, identical decoded pixels, and near duplicates by perceptual hash,
    /// each group in dataset order, flagged as a leak when it spans splits.
    /// - Parameter member: the path and split of `Kept.file`.
    func duplicates(_ kept: PagedArray<Kept>, member: (Int) -> (path: String, split: String?)) -> CheckReport.Duplicates {
        var result = CheckReport.Duplicates(threshold: threshold)
        func group(_ records: [Int], distance: Int? = nil) -> CheckReport.Group {
            var members: [CheckReport.Member] = []
            var seen = Set<String>()
            for r in records {
                let m = member(Int(kept[r].file))
                if let split = m.split { seen.insert(split) }
                members.append(.init(path: m.path, split: m.split))
            }
            return CheckReport.Group(files: members, leak: seen.count > 1, maxDistance: distance)
        }
        // Classes of equal bytes and of equal pixels: records sorted by digest, then by position,
        // so each class is a run in dataset order (4 bytes a record; no array per class).
        func runs(_ key: (Kept) -> Digest) -> [ArraySlice<Int32>] {
            var order = (0..<Int32(kept.count)).map { $0 }
            order.sort { a, b in
                let ka = key(kept[Int(a)]), kb = key(kept[Int(b)])
                return ka == kb ? a < b : ka < kb
            }
            var out: [ArraySlice<Int32>] = [], start = 0
            for i in 1...order.count where i == order.count || key(kept[Int(order[i])]) != key(kept[Int(order[start])]) {
                out.append(order[start..<i])
                start = i
            }
            return out.sorted { $0.first! < $1.first! }
        }
        guard !kept.isEmpty else { return result }
        for run in runs(\.bytes) where run.count > 1 { result.bytes.append(group(run.map(Int.init))) }
        let pixelRuns = runs(\.pixels)
        for run in pixelRuns where run.count > 1 && Set(run.map { kept[Int($0)].bytes }).count > 1 {
            result.pixels.append(group(run.map(Int.init)))
        }
        // Near duplicates: one hash per distinct pixels (its first image), joined when within the threshold.
        let hashes = pixelRuns.map { kept[Int($0.first!)].perceptual }
        var parent = Array(hashes.indices)
        func root(_ x: Int) -> Int {
            var x = x
            while parent[x] != x { parent[x] = parent[parent[x]]; x = parent[x] }
            return x
        }
        hashes.withUnsafeBufferPointer { h in
            for a in h.indices {
                let ha = h[a]
                for b in (a + 1)..<max(a + 1, h.count) where (ha ^ h[b]).nonzeroBitCount <= threshold {
                    let ra = root(a), rb = root(b)
                    if ra != rb { parent[max(ra, rb)] = min(ra, rb) }
                }
            }
        }
        var components: [Int: [Int]] = [:], componentOrder: [Int] = []
        for a in hashes.indices {
            let r = root(a)
            if components[r] == nil { componentOrder.append(r) }
            components[r, default: []].append(a)
        }
        for r in componentOrder {
            guard let members = components[r], members.count > 1 else { continue }
            var distance = 0
            for (i, a) in members.enumerated() {
                for b in members[(i + 1)...] {
                    distance = max(distance, (hashes[a] ^ hashes[b]).nonzeroBitCount)
                }
            }
            let records = members.flatMap { pixelRuns[$0].map(Int.init) }.sorted()
            result.near.append(group(records, distance: distance))
        }
        return result
    }

    func tally(_ r: CheckReport) -> CheckReport.Counts {
        var c = CheckReport.Counts()
        c.corrupt = r.problems.decodeFailures.count
        c.mismatch = r.problems.extensionMismatches.count
        c.unsupported = r.problems.unsupported.count
        c.refused = r.problems.refused.count + (r.problems.conversionRefusal == nil ? 0 : 1)
        c.orientation = r.orientation.malformed.count
        c.names = (r.classes.numericOrder == nil ? 0 : 1) + r.classes.similarNames.count
        c.empty = r.classes.empty.count
        c.duplicates = r.duplicates.bytes.count + r.duplicates.pixels.count
        c.near = r.duplicates.near.count
        let groups = r.duplicates.bytes + r.duplicates.pixels + r.duplicates.near
        c.leak = groups.filter(\.leak).count
        c.imbalance = r.balance.ratio
        return c
    }
}

/// A SHA-256 digest in four words: kept per image without a heap string.
struct Digest: Hashable, Comparable {
    var words = SIMD4<UInt64>(repeating: 0)

    init() {}

    init(_ bytes: [UInt8]) {
        for (i, b) in bytes.prefix(32).enumerated() { words[i / 8] = words[i / 8] << 8 | UInt64(b) }
    }

    /// A digest no SHA-256 will equal in practice, for an image without a known source.
    init(unique n: Int) { words = SIMD4(UInt64(n), 0, 0, UInt64.max) }

    static func < (a: Digest, b: Digest) -> Bool {
        for i in 0..<4 where a.words[i] != b.words[i] { return a.words[i] < b.words[i] }
        return false
    }
}

/// A 63-bit perceptual hash (pHash): the image in gray, averaged down to 32x32, its 2-D DCT, and
/// one bit per coefficient of the 8x8 lowest frequencies but the DC term: set when above their
/// median. It survives resizing and JPEG re-compression (the low frequencies barely move) and,
/// being a comparison with a median, any change of brightness scale or sample type.
public enum PerceptualHash {
    /// See README ("Check"): resized (32 to 200 pixels) and re-compressed (JPEG quality 30 to 75)
    /// copies of the sample photos lie 0-8 bits from their source; distinct photos 18 or more.
    public static let defaultThreshold = 10
    static let side = 32

    /// The hash of a decoded image (any channels and sample type; alpha is ignored).
    public static func hash(_ image: PixelBuffer) -> UInt64 {
        let c = image.channels, dtype = image.depth.dtype, size = dtype.byteSize
        return image.bytes.withUnsafeBytes { raw in
            hash(width: image.width, height: image.height, channels: c) { p, k in dtype.value(in: raw, at: (p * c + k) * size) }
        }
    }

    /// The hash of an image whose sample `k` of pixel `p` (row-major) is `sample(p, k)`.
    public static func hash(width: Int, height: Int, channels: Int, sample: (Int, Int) -> Double) -> UInt64 {
        let cells = grayCells(width: width, height: height, channels: channels, sample: sample)
        // Rows then columns of the separable DCT-II, the first 8 frequencies only.
        let n = side
        var cosines = [Double](repeating: 0, count: 8 * n)
        for u in 0..<8 {
            for x in 0..<n { cosines[u * n + x] = cos(Double((2 * x + 1) * u) * Double.pi / Double(2 * n)) }
        }
        var rows = [Double](repeating: 0, count: n * 8)
        for y in 0..<n {
            for u in 0..<8 {
                var s = 0.0
                for x in 0..<n { s += cells[y * n + x] * cosines[u * n + x] }
                rows[y * 8 + u] = s
            }
        }
        var coefficients: [Double] = []
        for v in 0..<8 {
            for u in 0..<8 where u + v > 0 {
                var s = 0.0
                for y in 0..<n { s += rows[y * 8 + u] * cosines[v * n + y] }
                coefficients.append(s)
            }
        }
        let median = coefficients.sorted()[coefficients.count / 2]
        var bits: UInt64 = 0
        for (i, c) in coefficients.enumerated() where c > median { bits |= 1 << UInt64(i) }
        return bits
    }

    /// The image's luma averaged over a 32x32 grid of cells (each cell at least one pixel, so a
    /// smaller image is enlarged by repeating pixels). NaNs and infinities count as 0.
    static func grayCells(width w: Int, height h: Int, channels c: Int, sample: (Int, Int) -> Double) -> [Double] {
        let n = side
        var out = [Double](repeating: 0, count: n * n)
        guard w > 0, h > 0, c > 0 else { return out }
        func value(_ p: Int, _ k: Int) -> Double {
            let v = sample(p, k)
            return v.isFinite ? v : 0
        }
        func luma(_ p: Int) -> Double {
            c >= 3 ? 0.299 * value(p, 0) + 0.587 * value(p, 1) + 0.114 * value(p, 2) : value(p, 0)
        }
        func range(_ size: Int, _ k: Int) -> Range<Int> {
            let lo = k * size / n
            return lo..<max(lo + 1, (k + 1) * size / n)
        }
        for cy in 0..<n {
            let ys = range(h, cy)
            for cx in 0..<n {
                let xs = range(w, cx)
                var sum = 0.0
                for y in ys { for x in xs { sum += luma(y * w + x) } }
                out[cy * n + cx] = sum / Double(ys.count * xs.count)
            }
        }
        return out
    }
}

/// `check --fail-on`: the findings that make the run fail, e.g. `corrupt,leak,imbalance=10`.
/// A kind alone fails on any finding of it (`kind=N`: on more than N); `imbalance=R` fails when the
/// largest class holds more than R times the smallest (`imbalance` alone: 10); `any` names every kind.
public struct FailOn: Sendable, Equatable {
    public static let kinds = ["corrupt", "mismatch", "unsupported", "refused", "orientation", "names", "empty",
                               "duplicates", "near", "leak", "imbalance"]
    public static let defaultImbalance = 10.0
    /// Kind and limit, in the order given.
    public var rules: [(kind: String, limit: Double)]

    public static func == (a: FailOn, b: FailOn) -> Bool {
        a.rules.map(\.kind) == b.rules.map(\.kind) && a.rules.map(\.limit) == b.rules.map(\.limit)
    }

    /// - Throws: `.invalidArgument` naming the part it cannot read.
    public static func parse(_ text: String) throws -> FailOn {
        var rules: [(String, Double)] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false).map({ $0.trimmingWhitespace() }) {
            let pieces = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            let kind = pieces[0]
            guard kind == "any" || kinds.contains(kind) else {
                throw ImgConvError(.invalidArgument, "--fail-on: '\(part)' is not one of \((kinds + ["any"]).joined(separator: ", "))")
            }
            var limit = kind == "imbalance" ? defaultImbalance : 0
            if pieces.count == 2 {
                guard kind != "any", let v = Double(pieces[1]), v.isFinite, v >= 0, kind != "imbalance" || v >= 1 else {
                    throw ImgConvError(.invalidArgument, "--fail-on: cannot read '\(part)' (kind=N, a count; imbalance=R, a ratio of at least 1)")
                }
                limit = v
            }
            if kind == "any" {
                rules += kinds.map { ($0, $0 == "imbalance" ? defaultImbalance : 0) }
            } else {
                rules.append((kind, limit))
            }
        }
        return FailOn(rules: rules)
    }

    /// The rules a report breaks, as `kind N (limit L)`, in the order given (each kind once).
    public func failures(_ report: CheckReport) -> [String] {
        let c = report.counts
        let counts: [String: Int] = ["corrupt": c.corrupt, "mismatch": c.mismatch, "unsupported": c.unsupported,
                                     "refused": c.refused, "orientation": c.orientation, "names": c.names,
                                     "empty": c.empty, "duplicates": c.duplicates, "near": c.near, "leak": c.leak]
        var out: [String] = [], seen = Set<String>()
        for (kind, limit) in rules where seen.insert(kind).inserted {
            if kind == "imbalance" {
                if let ratio = c.imbalance, ratio > limit {
                    out.append("imbalance \(cFormat("%.2f", ratio)) (limit \(cFormat("%g", limit)))")
                }
            } else if let n = counts[kind], Double(n) > limit {
                out.append(limit == 0 ? "\(kind) \(n)" : "\(kind) \(n) (limit \(cFormat("%g", limit)))")
            }
        }
        return out
    }
}

extension Checker {
    /// `check FILE`: an existing output (`.npz`, `.npy` folder, `.h5`, IDX), read through
    /// `LabeledDataset`: what its manifest records (skipped files, orientation, the source
    /// files' SHA-256), and from the stored tensors the shapes, class and split counts, and
    /// duplicates by pixels (identical images, near duplicates), a leak when a group spans
    /// splits. Images stream through one at a time.
    public func check(container path: String, read: DatasetReadOptions = DatasetReadOptions()) throws -> CheckReport {
        let dataset = try LabeledDataset(path: path, options: read)
        try dataset.requireSplits()
        let manifest = dataset.manifest
        let names = dataset.classNames
        // The manifest's files line up with the tensors when it lists one per image (split by split).
        let records = manifest.flatMap { $0.files.count == dataset.imageCount ? $0.files : nil }
        var report = CheckReport(
            tool: .init(name: ToolInfo.name, version: ToolInfo.version),
            source: .init(root: path, kind: dataset.formatName), options: manifest?.options ?? options.manifestOptions(),
            files: records?.count ?? dataset.imageCount, images: dataset.imageCount,
            channels: .init(option: "stored", decision: ""), depths: .init(option: "stored", decision: ""),
            sizes: .init(option: "stored", decision: ""), classes: .init(count: names.count),
            duplicates: .init(threshold: threshold))
        if let manifest {
            report.warnings = manifest.warnings
            for s in manifest.skipped {
                let issue = CheckReport.FileIssue(path: s.path, reason: s.reason)
                if s.reason.hasPrefix("unsupported format") {
                    report.problems.unsupported.append(issue)
                } else if s.reason == "not an image" || s.reason == "empty file" {
                    report.problems.notImages.append(issue)
                } else {
                    report.problems.decodeFailures.append(issue)
                }
            }
            var named = Set<String>()
            for f in manifest.files {
                if let format = ImageFormat(rawValue: f.format), named.insert(f.path).inserted { noteExtension(f.path, format, &report) }
                guard (f.orientation ?? 1) > 1 else { continue }
                report.orientation.rotated += 1
                if report.orientation.examples.count < Self.examples { report.orientation.examples.append(f.path) }
            }
        }
        var counts = [Int](repeating: 0, count: names.count)
        var kept = PagedArray<Kept>()
        var starts: [(split: String, index: Int)] = []   // per split: its name and first image
        var image = 0
        var geometries: [ImageGeometry] = []
        for split in dataset.splits {
            let labels = try dataset.labels(split)
            var perClass = [Int](repeating: 0, count: names.count)
            for l in labels { perClass[Int(l)] += 1 }
            for c in counts.indices { counts[c] += perClass[c] }
            report.balance.splits.append(.init(name: split.name, count: split.count, classes: perClass))
            let g = try dataset.geometry(split)
            geometries.append(g)
            starts.append((split.name, image))
            let (_, stream) = try dataset.openImages(split)
            var scratch: [UInt8] = []
            let (h, w, c, dtype) = (g.height, g.width, g.channels, g.dtype)
            let size = dtype.byteSize
            for i in 0..<split.count {
                let hashes = try stream.next(g.bytesPerImage, scratch: &scratch) { raw -> Hashes in
                    guard raw.count == g.bytesPerImage else {
                        throw ImgConvError(.corruptInput, path: path, "\(dataset.storageName(split.imagesName)): ends at image \(i) of \(split.count)")
                    }
                    var pixels = SHA256Stream()
                    pixels.update(raw)
                    let perceptual = PerceptualHash.hash(width: w, height: h, channels: c) { p, k in
                        dtype.value(in: raw, at: (g.nchw ? k * h * w + p : p * c + k) * size)
                    }
                    return Hashes(bytes: Digest(), pixels: Digest(pixels.finishBytes()), perceptual: perceptual)
                }
                // Source bytes from the manifest (the page too: pages of one file are not copies).
                let source = records.map { Digest(sha256Bytes(Array("\($0[image].sha256):\($0[image].page ?? 0)".utf8))) }
                    ?? Digest(unique: image)
                kept.append(Kept(file: Int32(image), bytes: source, pixels: hashes.pixels, perceptual: hashes.perceptual))
                image += 1
                progress(image, dataset.imageCount, 0)
            }
        }
        for g in geometries where g.count > 0 {
            report.channels.histogram[String(g.channels), default: 0] += g.count
            report.depths.histogram[g.dtype.rawValue, default: 0] += g.count
            report.sizes.histogram["\(g.height)x\(g.width)", default: 0] += g.count
        }
        if let g = geometries.first {
            report.channels.decision = String(g.channels)
            report.depths.decision = g.dtype.rawValue
            report.sizes.decision = "\(g.height)x\(g.width)"
        }
        report.classes = classFindings(names, counts: counts)
        classBalance(names, counts: counts, &report)
        if dataset.splits.count == 1 { report.balance.splits = [] }
        let named = dataset.splits.count > 1
        report.duplicates = duplicates(kept) { i in
            let part = starts.last { $0.index <= i }!
            let path = records?[i].path ?? "\(dataset.splits.first { $0.name == part.split }!.imagesName)[\(i - part.index)]"
            return (path, named ? part.split : nil)
        }
        report.counts = tally(report)
        return report
    }
}
