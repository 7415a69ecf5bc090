import FoundationEssentials
import Glibc
import ImgConvCodecs
import ImgConvCore
import ImgConvFormats

/// How `imgconv plan` divides each split among the shards.
public enum ShardBalance: String, Sendable, CaseIterable, Codable {
    /// Each shard gets (nearly) the same number of images of every split.
    case images
    /// Each shard gets (nearly) the same number of source pixels (from the headers) of every split.
    case pixels
}

/// What `imgconv plan` writes (`Schemas/plan.schema.json`): everything a shard cannot work out
/// from its own files. The class map, the tensor's plan (shape, dtype, shaping), every image in
/// each split's final order with its header, the files left out while reading headers, and each
/// shard's contiguous range of every split. `hash` is the SHA-256 of the plan's JSON with `hash`
/// empty: parts record it, and `merge` joins only parts of one plan.
public struct ShardPlan: Codable, Sendable, Equatable {
    public static let formatName = "imgconv-plan"
    public static let currentVersion = 1

    /// A source file that holds at least one planned image.
    public struct File: Codable, Sendable, Equatable {
        public var path: String
        public var label: Int
    }

    /// One image: its file (an index into `files`), page or frame, format and header.
    public struct Item: Codable, Sendable, Equatable {
        public var file: Int
        public var page: Int
        public var format: String
        public var width: Int
        public var height: Int
        public var channels: Int
        public var depth: String
        public var orientation: Int
        public var pages: Int
    }

    /// A split in output order, and shard k's range `ranges[k]` = `[start, end)` of it.
    public struct Split: Codable, Sendable, Equatable {
        public var name: String
        public var items: [Item]
        public var ranges: [[Int]]
    }

    public var format = ShardPlan.formatName
    public var version = ShardPlan.currentVersion
    public var hash = ""
    public var tool: Manifest.Tool
    public var source: Manifest.Source
    /// What relative file paths are joined to (the root, or the CSV's folder).
    public var base: String
    /// The conversion options (as the manifest records them).
    public var options: Manifest.Options
    public var shards: Int
    public var balance: ShardBalance
    public var classes: [String]
    /// The tensor every image is brought to.
    public var image: ImagePlan
    public var files: [File]
    public var splits: [Split]
    /// Files left out by the scan and the header pass, in the order a one-machine run lists them.
    public var skipped: [SkippedFile]
    public var warnings: [String]
    public var ignoredTiffPages: Int
    public var ignoredFrames: Int
    /// The image count a one-machine run announces to its writer when it converts in one pass
    /// (no shuffle, no splits, every image fitting the first one's plan): every scanned file.
    /// HDF5 sizes its chunks from it, so the merge announces the same. Absent: each split's count.
    public var announcedCount: Int?

    static func jsonEncoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    /// The plan's JSON: keys sorted, no spaces, a trailing newline; the bytes `JSONEncoder`
    /// writes with `.sortedKeys` and `.withoutEscapingSlashes`. Its small members are encoded by
    /// `JSONEncoder`; the files and the images (all but a few hundred bytes of the text) are
    /// written directly into that text, as `JSONEncoder` would write them (it took most of the
    /// plan command's time).
    public func encoded() throws -> [UInt8] {
        var shell = self
        shell.files = []
        shell.splits = []
        var bytes = Array(try Self.jsonEncoder().encode(shell))
        // Sorted keys: "files" comes before "splits"; fill the later one first so the earlier
        // one's offset stays put. A string value cannot hold an unescaped quote, so the first
        // match is the key.
        var out = PlanJSON(encoder: Self.jsonEncoder())
        for (k, split) in splits.enumerated() {
            if k > 0 { out.bytes.append(0x2C) }
            try out.split(split)
        }
        try Self.fill(&bytes, key: "splits", with: out.take())
        for (k, file) in files.enumerated() {
            if k > 0 { out.bytes.append(0x2C) }
            try out.file(file)
        }
        try Self.fill(&bytes, key: "files", with: out.take())
        bytes.append(0x0A)
        return bytes
    }

    /// Puts `elements` into the empty array of the top-level `key` in `bytes`.
    private static func fill(_ bytes: inout [UInt8], key: String, with elements: [UInt8]) throws {
        guard let at = firstIndex(of: Array("\"\(key)\":[]".utf8), in: bytes) else {
            throw ImgConvError(.io, path: "", "plan: the encoder wrote no empty '\(key)' array")
        }
        bytes.insert(contentsOf: elements, at: at + key.utf8.count + 4)
    }

    /// The offset of the first `needle` (not empty) in `haystack`.
    static func firstIndex(of needle: [UInt8], in haystack: [UInt8]) -> Int? {
        haystack.withUnsafeBytes { h in
            needle.withUnsafeBytes { n in byteSearch(h, from: 0, to: h.count, n.baseAddress!, n.count) }
        }
    }

    /// Where the value of the top-level `"hash"` starts in a plan's canonical JSON (just after
    /// its opening quote), if the text has that key in the canonical form.
    static func hashValueOffset(in bytes: [UInt8]) -> Int? {
        firstIndex(of: Array("\"hash\":\"".utf8), in: bytes).map { $0 + 8 }
    }

    /// Sets `hash` and returns the plan's file bytes (the same as `encoded()`), encoding the plan
    /// once: the JSON with `hash` empty is hashed, then the hash is written into it.
    public mutating func seal() throws -> [UInt8] {
        hash = ""
        var bytes = try encoded()
        let digest = sha256Hex(bytes)
        hash = digest
        guard let at = Self.hashValueOffset(in: bytes) else { return try encoded() }
        bytes.insert(contentsOf: Array(digest.utf8), at: at)
        return bytes
    }

    /// The SHA-256 of the plan's JSON with `hash` empty.
    public func computedHash() throws -> String {
        var copy = self
        copy.hash = ""
        return sha256Hex(try copy.encoded())
    }

    /// Whether `hash` is the plan's: for the file `plan` writes (canonical JSON), the SHA-256 of
    /// its bytes with the hash's value taken out is the SHA-256 of the plan with `hash` empty, so
    /// the plan need not be encoded again (a third of a shard's CPU time on 4,000 images); any
    /// other form of the same JSON (re-indented, keys reordered) is encoded again to check it.
    func hashMatches(_ bytes: [UInt8]) throws -> Bool {
        let value = Array(hash.utf8)
        if !value.isEmpty, let offset = Self.hashValueOffset(in: bytes), offset + value.count < bytes.count,
           bytes[offset..<(offset + value.count + 1)].elementsEqual(value + [0x22]),
           Self.canonicalHashMatches(bytes) == true {
            return true
        }
        return try computedHash() == hash
    }

    /// Reads a plan and checks its hash.
    /// - Throws: `.notFound` for a missing file, `.corruptInput` for one that is not an intact plan.
    public static func load(_ path: String) throws -> ShardPlan {
        try load(path, bytes: readFile(path, maxBytes: 1 << 34))
    }

    /// The same, from the file's bytes.
    public static func load(_ path: String, bytes: [UInt8]) throws -> ShardPlan {
        let plan: ShardPlan
        do {
            plan = try PlanJSONReader.decode(bytes) ?? JSONDecoder().decode(ShardPlan.self, from: Data(bytes))
        } catch {
            throw ImgConvError(.corruptInput, path: path, "not an imgconv plan: \(error)")
        }
        try checkHeader(plan, path: path)
        guard try plan.hashMatches(bytes) else { throw hashMismatch(path) }
        try checkRanges(plan, path: path)
        return plan
    }

    static func checkHeader(_ plan: ShardPlan, path: String) throws {
        guard plan.format == formatName, plan.version == currentVersion else {
            throw ImgConvError(.corruptInput, path: path, "not an imgconv plan of version \(currentVersion) (format '\(plan.format)', version \(plan.version))")
        }
    }

    static func hashMismatch(_ path: String) -> ImgConvError {
        ImgConvError(.corruptInput, path: path, "the plan's content does not match its hash (changed after it was written)")
    }

    static func rangesMismatch(_ path: String, shards: Int) -> ImgConvError {
        ImgConvError(.corruptInput, path: path, "the plan's ranges do not match its \(shards) shards")
    }

    static func checkRanges(_ plan: ShardPlan, path: String) throws {
        guard plan.shards >= 1, plan.splits.allSatisfy({ $0.ranges.count == plan.shards }) else {
            throw rangesMismatch(path, shards: plan.shards)
        }
    }

    /// For a plan in the canonical form: whether the SHA-256 of its text with the hash's value
    /// taken out is that value (hashed in place). Nil when the text has no hash in that form.
    static func canonicalHashMatches(_ bytes: [UInt8]) -> Bool? {
        guard let offset = hashValueOffset(in: bytes),
              let end = bytes[offset...].firstIndex(of: 0x22), end - offset == 64 else { return nil }
        var sha = SHA256Stream()
        bytes.withUnsafeBytes { all in
            sha.update(UnsafeRawBufferPointer(rebasing: all[0..<offset]))
            sha.update(UnsafeRawBufferPointer(rebasing: all[end...]))
        }
        return bytes[offset..<end].elementsEqual(sha.finish().utf8)
    }

    /// The name of shard `k` of `n`'s output in its folder: `part-0000k-of-0000n.<format>`.
    public static func partName(_ k: Int, of n: Int, format: String) -> String {
        cFormat("part-%05ld-of-%05ld.", k, n) + format
    }

    /// Divides `weights` (in order) into `n` contiguous ranges of nearly equal total weight.
    static func ranges(_ weights: [Int], shards n: Int) -> [[Int]] {
        let total = weights.reduce(0, +)
        var bounds = [0]
        var sum = 0, at = 0
        for k in 1..<max(1, n) {
            // The first position whose prefix sum reaches k/n of the total.
            let goal = (total * k + n - 1) / n
            while at < weights.count && sum < goal {
                sum += weights[at]
                at += 1
            }
            bounds.append(at)
        }
        bounds.append(weights.count)
        return (0..<n).map { [bounds[$0], bounds[$0 + 1]] }
    }
}

/// Which shard of which plan a conversion writes.
public struct ShardRun: Sendable {
    public var index: Int
    public var count: Int
    public var planHash: String
    public var ranges: [String: [Int]]
}

extension Converter {
    /// `imgconv plan`: scans the dataset, reads every header, plans the tensor and each split's
    /// order exactly as a one-machine conversion does (`planAll`), and divides every split among
    /// `shards` shards.
    /// - Throws: what a conversion would throw before decoding a pixel.
    public func makeShardPlan(source: DatasetSource, shards: Int, balance: ShardBalance) throws -> ShardPlan {
        try makeShardPlanFile(source: source, shards: shards, balance: balance).plan
    }

    /// The same, with the plan file's bytes (`ShardPlan.encoded()`), encoded once for both.
    public func makeShardPlanFile(source: DatasetSource, shards: Int, balance: ShardBalance) throws -> (plan: ShardPlan, bytes: [UInt8]) {
        let (scan, root) = try self.scan(source)
        scan.warnings.forEach(warn)
        try checkLabelCapacity(scan)
        let headers = HeaderPass(decoders: Decoders(options: options.decode), tiffPages: options.tiffPages, frames: options.frames)
        var findings = HeaderFindings()
        var said = Set<String>()
        let planned = try planAll(scan: scan, headers: headers, findings: &findings,
                                  warn: { [warn] text in if said.insert(text).inserted { warn(text) } })
        var recorded = options.manifestOptions()
        recorded.compress = false
        // The options must come back from the plan as they are: a shard converts with them.
        guard try ConversionOptions(manifest: recorded).manifestOptions() == recorded else {
            throw ImgConvError(.internal, "the conversion options do not survive the plan")
        }
        // The files that hold images, in scan order (candidates come in file order).
        var files: [ShardPlan.File] = []
        var planFile = [Int: Int]()
        let candidates = planned.candidates
        for i in candidates.indices {
            let f = candidates.fileIndex(at: i)
            if planFile[f] == nil {
                planFile[f] = files.count
                files.append(.init(path: scan.files.relativePath(at: f), label: scan.files.label(at: f)))
            }
        }
        let splits = planned.parts.map { part -> ShardPlan.Split in
            let items = part.items.map { index -> ShardPlan.Item in
                let c = candidates[Int(index)]
                let h = c.header
                return .init(file: planFile[candidates.fileIndex(at: Int(index))]!, page: c.page, format: c.format.rawValue,
                             width: h.width, height: h.height, channels: h.channels, depth: h.depth.rawValue,
                             orientation: h.orientation, pages: h.pages)
            }
            let weights = items.map { balance == .pixels ? max(1, $0.width * $0.height) : 1 }
            return .init(name: part.name, items: items, ranges: ShardPlan.ranges(weights, shards: shards))
        }
        let base = scan.files.base
        // The single pass a one-machine run takes when it can (see `Converter.convert`): planned
        // from the first image, holding when every file is one image that plan admits.
        var image = planned.plan
        var announced: Int?
        if options.shuffleSeed == nil && options.split == nil && !scan.files.hasSplits,
           let first = try onePassPlan(scan.files, headers: headers),
           candidates.indices.dropFirst().allSatisfy({ candidates.fileIndex(at: $0) != candidates.fileIndex(at: $0 - 1) }),
           candidates.allSatisfy({ first.admits($0.header, request: options.shaping) }) {
            image = first
            announced = scan.files.count
        }
        var plan = ShardPlan(tool: .init(name: ToolInfo.name, version: ToolInfo.version),
                             source: .init(root: root, kind: source.kind), base: base, options: recorded,
                             shards: shards, balance: balance, classes: scan.classes.map(\.name), image: image,
                             files: files, splits: splits, skipped: scan.skipped + findings.headerSkipped,
                             warnings: scan.warnings, ignoredTiffPages: findings.ignoredPages,
                             ignoredFrames: findings.ignoredFrames, announcedCount: announced)
        let bytes = try plan.seal()
        return (plan, bytes)
    }

    /// `to-* --plan P --shard K/N`: converts exactly the shard's range of every split of the
    /// plan (`slice`) with `writer`; its manifest records the shard (`Manifest.Shard`) and only
    /// the files it left out itself (the plan's skips are the merge's).
    public func convertShard(_ slice: ShardSlice, writer: DatasetWriter, outputName: String,
                             formatName: String) throws -> ConversionSummary {
        let start = Date()
        let plan = slice.plan, index = slice.index
        try writer.checkTargets()
        // The plan's paths join its base as `plan` saw it: relative to the folder plan ran in.
        guard plan.base.isEmpty || isFolder(plan.base) else {
            let from = plan.base.hasPrefix("/") ? "" : " from the current folder"
            throw ImgConvError(.notFound, path: plan.base, "the plan's images are under this folder, which is not there\(from): run the shards where it is, or plan with an absolute ROOT")
        }
        // No output may replace a file of the plan, this shard's or another's (the slice holds
        // the plan's files named like an output).
        var named = FileList(base: plan.base)
        for path in slice.filesNamed { named.append(relativePath: path, label: 0) }
        try refuseOutputsAmongInputs(writer.outputFiles, images: named)
        var list = FileList(base: plan.base)
        for f in slice.files { list.append(relativePath: f.path, label: f.label) }
        let scan = ScanResult(root: plan.source.root, classes: plan.classes.enumerated().map { ClassEntry(index: $0.offset, name: $0.element) },
                              files: list, skipped: [], warnings: [])
        let files = scan.files
        try checkLabelCapacity(scan)
        let formats = Dictionary(uniqueKeysWithValues: ImageFormat.allCases.map { ($0.rawValue, $0) })
        let parts = try zip(plan.splits, slice.items).map { split, items -> WorkPart in
            for item in items {
                guard item.file >= 0 && item.file < files.count, formats[item.format] != nil,
                      SampleDepth(rawValue: item.depth) != nil else {
                    throw ImgConvError(.corruptInput, "plan: an image of split '\(split.name)' is not a valid entry")
                }
            }
            return WorkPart(name: split.name, count: items.count, item: { i in
                let it = items[i]
                let header = ImageHeader(width: it.width, height: it.height, channels: it.channels,
                                         depth: SampleDepth(rawValue: it.depth)!, orientation: it.orientation, pages: it.pages)
                let c = Candidate(file: files[it.file], header: header, format: formats[it.format]!, page: it.page)
                return Item(file: c.file, probed: c)
            })
        }
        let source: DatasetSource = plan.source.kind == "list" ? .list(plan.source.root) : .folders(plan.source.root)
        let headers = HeaderPass(decoders: Decoders(options: options.decode), tiffPages: options.tiffPages, frames: options.frames)
        var run = Run(scan: scan, root: plan.source.root, source: source, writer: writer, outputName: outputName,
                      formatName: formatName, headers: headers, start: start)
        let shard = ShardRun(index: index, count: plan.shards, planHash: plan.hash,
                             ranges: Dictionary(uniqueKeysWithValues: plan.splits.map { ($0.name, $0.ranges[index]) }))
        return try write(&run, parts: parts, plan: plan.image, planned: parts.reduce(0) { $0 + $1.count }, onePass: false,
                         warn: warn, shard: shard)
    }

    /// The same for a plan decoded whole.
    public func convertShard(plan: ShardPlan, index: Int, writer: DatasetWriter, outputName: String,
                             formatName: String) throws -> ConversionSummary {
        try plan.checkRange(of: index, path: "plan")
        let names = writer.outputFiles.map { Array(lastPathComponent($0).utf8) }
        return try convertShard(ShardSlice(plan: plan, index: index, names: names), writer: writer, outputName: outputName,
                                formatName: formatName)
    }
}

/// The plan's files and images as `JSONEncoder` writes them (sorted keys, no spaces, slashes
/// not escaped). A string with a quote, a backslash, a control character or a non-ASCII byte
/// is handed to `JSONEncoder` itself, so its escaping is the encoder's to the byte.
private struct PlanJSON {
    var bytes: [UInt8] = []
    let encoder: JSONEncoder

    init(encoder: JSONEncoder) {
        self.encoder = encoder
        bytes.reserveCapacity(1 << 20)
    }

    mutating func take() -> [UInt8] {
        defer { bytes = [] }
        return bytes
    }

    mutating func raw(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    mutating func int(_ v: Int) {
        if v >= 0 && v < 10 {
            bytes.append(0x30 + UInt8(v))
            return
        }
        bytes.append(contentsOf: String(v).utf8)
    }

    mutating func string(_ s: String) throws {
        var plain = true
        for u in s.utf8 where u < 0x20 || u >= 0x80 || u == 0x22 || u == 0x5C {
            plain = false
            break
        }
        guard plain else {
            // `["…"]`: the encoded string between the brackets.
            let wrapped = Array(try encoder.encode([s]))
            bytes.append(contentsOf: wrapped[1..<(wrapped.count - 1)])
            return
        }
        bytes.append(0x22)
        bytes.append(contentsOf: s.utf8)
        bytes.append(0x22)
    }

    mutating func file(_ f: ShardPlan.File) throws {
        raw("{\"label\":")
        int(f.label)
        raw(",\"path\":")
        try string(f.path)
        bytes.append(0x7D)
    }

    mutating func item(_ i: ShardPlan.Item) throws {
        raw("{\"channels\":")
        int(i.channels)
        raw(",\"depth\":")
        try string(i.depth)
        raw(",\"file\":")
        int(i.file)
        raw(",\"format\":")
        try string(i.format)
        raw(",\"height\":")
        int(i.height)
        raw(",\"orientation\":")
        int(i.orientation)
        raw(",\"page\":")
        int(i.page)
        raw(",\"pages\":")
        int(i.pages)
        raw(",\"width\":")
        int(i.width)
        bytes.append(0x7D)
    }

    mutating func split(_ split: ShardPlan.Split) throws {
        raw("{\"items\":[")
        for (k, item) in split.items.enumerated() {
            if k > 0 { bytes.append(0x2C) }
            try self.item(item)
        }
        raw("],\"name\":")
        try string(split.name)
        raw(",\"ranges\":[")
        for (k, range) in split.ranges.enumerated() {
            if k > 0 { bytes.append(0x2C) }
            bytes.append(0x5B)
            for (j, v) in range.enumerated() {
                if j > 0 { bytes.append(0x2C) }
                int(v)
            }
            bytes.append(0x5D)
        }
        raw("]}")
    }
}

/// Reads a plan in the form `ShardPlan.encoded()` writes (see `PlanJSON`): its files and images
/// are parsed here, everything else (a few hundred bytes) by `JSONDecoder`. Decoding the whole
/// plan with `JSONDecoder` cost a shard about 45 ms of CPU on 4,000 images, a tenth of its work.
/// Any other form of the JSON (re-indented, keys reordered, escapes in a file name) returns nil,
/// and the caller decodes the whole text with `JSONDecoder`.
enum PlanJSONReader {
    static func decode(_ bytes: [UInt8]) throws -> ShardPlan? {
        // Keys are sorted: "files" comes before "splits", and neither key occurs in an object
        // written before it. A string value cannot hold an unescaped quote, so the first match
        // is the key.
        let filesKey = Array("\"files\":[".utf8), splitsKey = Array("\"splits\":[".utf8)
        guard let filesAt = ShardPlan.firstIndex(of: filesKey, in: bytes),
              let splitsAt = ShardPlan.firstIndex(of: splitsKey, in: bytes), filesAt < splitsAt else { return nil }
        let filesStart = filesAt + filesKey.count, splitsStart = splitsAt + splitsKey.count
        let parsed = bytes.withUnsafeBufferPointer { buf -> (files: [ShardPlan.File], filesEnd: Int, splits: [ShardPlan.Split], splitsEnd: Int)? in
            var files = Cursor(buf, at: filesStart)
            guard let f = files.array({ $0.file() }), files.at <= splitsAt else { return nil }
            var splits = Cursor(buf, at: splitsStart)
            guard let s = splits.array({ $0.split() }) else { return nil }
            return (f, files.at - 1, s, splits.at - 1)
        }
        guard let parsed else { return nil }
        // The rest, with both arrays empty.
        var shell = [UInt8]()
        shell.reserveCapacity(bytes.count - (parsed.filesEnd - filesStart) - (parsed.splitsEnd - splitsStart))
        shell.append(contentsOf: bytes[0..<filesStart])
        shell.append(contentsOf: bytes[parsed.filesEnd..<splitsStart])
        shell.append(contentsOf: bytes[parsed.splitsEnd...])
        var plan = try JSONDecoder().decode(ShardPlan.self, from: Data(shell))
        guard plan.files.isEmpty, plan.splits.isEmpty else { return nil }
        plan.files = parsed.files
        plan.splits = parsed.splits
        return plan
    }

    /// A position in the text; every method returns nil where the text is not in the form
    /// `PlanJSON` writes.
    struct Cursor {
        let buf: UnsafeBufferPointer<UInt8>
        var at: Int

        init(_ buf: UnsafeBufferPointer<UInt8>, at: Int) {
            self.buf = buf
            self.at = at
        }

        mutating func literal(_ text: StaticString) -> Bool {
            let n = text.utf8CodeUnitCount
            guard at + n <= buf.count, memcmp(buf.baseAddress! + at, text.utf8Start, n) == 0 else { return false }
            at += n
            return true
        }

        mutating func byte(_ b: UInt8) -> Bool {
            guard at < buf.count, buf[at] == b else { return false }
            at += 1
            return true
        }

        /// An integer as JSONEncoder writes one: an optional minus, no leading zeros, at most 18 digits.
        mutating func int() -> Int? {
            let negative = byte(0x2D)
            let start = at
            var v = 0
            while at < buf.count, buf[at] >= 0x30, buf[at] <= 0x39, at - start < 18 {
                v = v * 10 + Int(buf[at] - 0x30)
                at += 1
            }
            let digits = at - start
            guard digits > 0, digits < 18, !(digits > 1 && buf[start] == 0x30) else { return nil }
            return negative ? -v : v
        }

        /// A string without escapes or control characters (one with them is left to JSONDecoder).
        mutating func string() -> String? {
            guard byte(0x22) else { return nil }
            let start = at
            while at < buf.count {
                let b = buf[at]
                if b == 0x22 { break }
                if b == 0x5C || b < 0x20 { return nil }
                at += 1
            }
            guard at < buf.count else { return nil }
            let text = String(validating: UnsafeBufferPointer(rebasing: buf[start..<at]), as: UTF8.self)
            at += 1
            return text
        }

        /// `[e,e,...]` with the opening bracket already read; ends after the closing one.
        mutating func array<T>(_ element: (inout Cursor) -> T?) -> [T]? {
            var out: [T] = []
            if byte(0x5D) { return out }
            while true {
                guard let e = element(&self) else { return nil }
                out.append(e)
                if byte(0x5D) { return out }
                guard byte(0x2C) else { return nil }
            }
        }

        mutating func file() -> ShardPlan.File? {
            guard literal("{\"label\":"), let label = int(), literal(",\"path\":"), let path = string(),
                  byte(0x7D) else { return nil }
            return .init(path: path, label: label)
        }

        mutating func item() -> ShardPlan.Item? {
            guard literal("{\"channels\":"), let channels = int(),
                  literal(",\"depth\":"), let depth = string(),
                  literal(",\"file\":"), let file = int(),
                  literal(",\"format\":"), let format = string(),
                  literal(",\"height\":"), let height = int(),
                  literal(",\"orientation\":"), let orientation = int(),
                  literal(",\"page\":"), let page = int(),
                  literal(",\"pages\":"), let pages = int(),
                  literal(",\"width\":"), let width = int(), byte(0x7D) else { return nil }
            return .init(file: file, page: page, format: format, width: width, height: height, channels: channels,
                         depth: depth, orientation: orientation, pages: pages)
        }

        mutating func split() -> ShardPlan.Split? {
            guard literal("{\"items\":["), let items = array({ $0.item() }),
                  literal(",\"name\":"), let name = string(),
                  literal(",\"ranges\":["),
                  let ranges = array({ c -> [Int]? in c.byte(0x5B) ? c.array({ $0.int() }) : nil }),
                  byte(0x7D) else { return nil }
            return .init(name: name, items: items, ranges: ranges)
        }
    }
}

/// The offset of the first `n` bytes at `needle` in `h[from..<to]` (memchr for its first byte,
/// then memcmp; Swift's Glibc module has no memmem).
func byteSearch(_ h: UnsafeRawBufferPointer, from: Int, to: Int, _ needle: UnsafeRawPointer, _ n: Int) -> Int? {
    guard let base = h.baseAddress, n > 0 else { return nil }
    let first = Int32(needle.load(as: UInt8.self))
    var at = from
    while to - at >= n, let hit = memchr(base + at, first, to - n + 1 - at) {
        at = base.distance(to: UnsafeRawPointer(hit))
        if memcmp(base + at, needle, n) == 0 { return at }
        at += 1
    }
    return nil
}
