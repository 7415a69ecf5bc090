import FoundationEssentials
import Glibc

/// The JSON document written beside every output (`Schemas/manifest.schema.json`). It holds no
/// timestamps, so the same inputs and options give the same bytes.
public struct Manifest: Codable, Sendable, Equatable {
    public static let formatName = "imgconv-manifest"
    /// 1: tensors carry `sha256`; 2: tensors carry `xxh3` (`TensorHashAlgorithm`). Both are read.
    public static let currentVersion = 2

    public struct Tool: Codable, Sendable, Equatable {
        public var name: String
        public var version: String
        public init(name: String, version: String) {
            self.name = name
            self.version = version
        }
    }
    public struct Source: Codable, Sendable, Equatable {
        /// The dataset root as the user named it.
        public var root: String
        public var kind: String
        public init(root: String, kind: String) {
            self.root = root
            self.kind = kind
        }
    }
    public struct Output: Codable, Sendable, Equatable {
        public var format: String
        /// The output's file or folder name (not its full path).
        public var name: String
        public init(format: String, name: String) {
            self.format = format
            self.name = name
        }
    }
    public struct ClassRecord: Codable, Sendable, Equatable {
        public var index: Int
        public var name: String
        public var count: Int
        public init(index: Int, name: String, count: Int) {
            self.index = index
            self.name = name
            self.count = count
        }
    }
    public struct TensorRecord: Codable, Sendable, Equatable {
        public var name: String
        public var shape: [Int]
        public var dtype: String
        /// Version 1: SHA-256 of the tensor's data bytes (C order, little-endian), without the NPY header.
        public var sha256: String?
        /// Version 2: the chunked XXH3-128 of the same bytes (`ChunkedXXH3`).
        public var xxh3: String?
        /// A record of the current version: `digest` is of `TensorHashAlgorithm.current`.
        public init(name: String, shape: [Int], dtype: String, digest: String) {
            self.init(name: name, shape: shape, dtype: dtype, digest: digest, algorithm: .current)
        }
        public init(name: String, shape: [Int], dtype: String, digest: String, algorithm: TensorHashAlgorithm) {
            self.name = name
            self.shape = shape
            self.dtype = dtype
            switch algorithm {
            case .sha256: sha256 = digest
            case .xxh3: xxh3 = digest
            }
        }
        /// The checksum of that algorithm, when the record has it.
        public func digest(_ algorithm: TensorHashAlgorithm) -> String? {
            switch algorithm {
            case .sha256: sha256
            case .xxh3: xxh3
            }
        }
    }
    public struct FileRecord: Codable, Sendable, Equatable {
        public var path: String
        public var label: Int
        public var format: String
        public var sha256: String
        /// The TIFF page, when every page of a multipage file is converted; the frame of an
        /// animated GIF or WebP, when every frame is (`--frames all`).
        public var page: Int?
        /// The EXIF orientation that was applied, when not 1.
        public var orientation: Int?
        /// A problem the decoder recovered from (accepted on request).
        public var warning: String?
        /// The split (train, val, test) the image went to, when the dataset is split.
        public var split: String?
        public init(path: String, label: Int, format: String, sha256: String, page: Int? = nil,
                    orientation: Int? = nil, warning: String? = nil, split: String? = nil) {
            self.split = split
            self.path = path
            self.label = label
            self.format = format
            self.sha256 = sha256
            self.page = page
            self.orientation = orientation
            self.warning = warning
        }
    }
    public struct Options: Codable, Sendable, Equatable {
        public var size: [Int]?
        public var color: String
        public var compress: Bool
        public var skipBad: Bool
        public var resizeFilter: String
        public var dtype: String
        public var exifOrientation: Bool
        public var allowTruncatedJpeg: Bool
        public var tiffPages: String
        public var maxPixels: Int
        /// How --size was reached (stretch, crop, pad), when a size was given.
        public var fit: String?
        /// RGBA pad colour (8-bit units), with fit pad.
        public var padColor: [Int]?
        /// RGB colour transparent images were composited on.
        public var background: [Int]?
        /// "unit" when values were divided by the input's maximum.
        public var scale: String?
        public var mean: [Float]?
        public var std: [Float]?
        public var layout: String?
        /// Classes as listed by --classes / --classes-file.
        public var classes: [String]?
        public var sort: String?
        public var shuffleSeed: UInt64?
        /// "index" (N,) or "onehot" (N, classes).
        public var labels: String?
        public var labelDtype: String?
        /// The split fractions asked for (`train=0.8,val=0.1,test=0.1`).
        public var split: String?
        public var stratify: Bool?
        /// JPEGs were decoded with DCT scaling (--jpeg-draft).
        public var jpegDraft: Bool?
        /// What was done with the frames of animated GIFs and WebPs (`--frames`: first, all,
        /// error); absent in manifests written before GIF and WebP were read.
        public var frames: String?
        public init(size: [Int]?, color: String, compress: Bool, skipBad: Bool, resizeFilter: String,
                    dtype: String, exifOrientation: Bool, allowTruncatedJpeg: Bool, tiffPages: String, maxPixels: Int) {
            self.size = size
            self.color = color
            self.compress = compress
            self.skipBad = skipBad
            self.resizeFilter = resizeFilter
            self.dtype = dtype
            self.exifOrientation = exifOrientation
            self.allowTruncatedJpeg = allowTruncatedJpeg
            self.tiffPages = tiffPages
            self.maxPixels = maxPixels
        }
    }
    public struct Summary: Codable, Sendable, Equatable {
        public var images: Int
        public var skipped: Int
        public var skippedByReason: [String: Int]
        /// Images turned upright from their EXIF/TIFF orientation.
        public var rotated: Int
        /// Pages of multipage TIFFs not converted (`--tiff-pages first`).
        public var ignoredTiffPages: Int
        /// Frames of animated GIFs and WebPs not converted (`--frames first`).
        public var ignoredFrames: Int?
        /// Images in each split, when the dataset is split.
        public var splits: [String: Int]?
        /// Images converted from each file format (`png`, `jpeg`, `tiff`, `gif`, `webp`).
        public var formats: [String: Int]?
        public init(images: Int, skipped: Int, skippedByReason: [String: Int], rotated: Int, ignoredTiffPages: Int) {
            self.images = images
            self.skipped = skipped
            self.skippedByReason = skippedByReason
            self.rotated = rotated
            self.ignoredTiffPages = ignoredTiffPages
        }
    }

    /// Which shard of a plan a part holds (`imgconv plan`, `to-* --plan --shard K/N`); absent
    /// in every other output.
    public struct Shard: Codable, Sendable, Equatable {
        /// K of `--shard K/N` (0 to N-1).
        public var index: Int
        /// N of `--shard K/N`.
        public var count: Int
        /// The plan's `hash`.
        public var planHash: String
        /// For each split of the plan, the range `[start, end)` of its global positions this part holds.
        public var ranges: [String: [Int]]
        /// How many of `skipped` (this part's own, decode-time skips, split by split) are in each split.
        public var skippedBySplit: [String: Int]

        public init(index: Int, count: Int, planHash: String, ranges: [String: [Int]], skippedBySplit: [String: Int]) {
            self.index = index
            self.count = count
            self.planHash = planHash
            self.ranges = ranges
            self.skippedBySplit = skippedBySplit
        }
    }

    public var format: String = Manifest.formatName
    public var version: Int = Manifest.currentVersion
    public var shard: Shard?
    public var tool: Tool
    public var source: Source
    public var output: Output
    public var options: Options
    public var classes: [ClassRecord]
    public var tensors: [TensorRecord]
    public var files: [FileRecord]
    public var skipped: [SkippedFile]
    public var warnings: [String]
    public var summary: Summary
    /// What `check` found in the sources, when the conversion was given `--check`
    /// (`Schemas/check.schema.json`).
    public var check: JSONValue?

    public init(tool: Tool, source: Source, output: Output, options: Options, classes: [ClassRecord],
                tensors: [TensorRecord], files: [FileRecord], skipped: [SkippedFile], warnings: [String],
                summary: Summary) {
        self.tool = tool
        self.source = source
        self.output = output
        self.options = options
        self.classes = classes
        self.tensors = tensors
        self.files = files
        self.skipped = skipped
        self.warnings = warnings
        self.summary = summary
    }

    /// The checksum of the tensor records (nil: an unknown version).
    public var tensorHash: TensorHashAlgorithm? { TensorHashAlgorithm(manifestVersion: version) }

    /// Deterministic JSON: keys sorted, two-space indentation, trailing newline. Written directly
    /// (not through JSONEncoder, whose intermediate tree costs about a kilobyte a file).
    public func encoded() throws -> [UInt8] {
        var out: [UInt8] = []
        try write(fileEntries: nil) { out += $0 }
        return out
    }

    /// The JSON text of `files` entry, as an element of the `files` array (`first`: the first
    /// element). A converter collects these as it goes (see `SpillBuffer`) instead of records.
    public static func fileEntry(_ f: FileRecord, first: Bool) -> [UInt8] {
        var j = JSONText(depth: 2, first: first)
        entry(f, into: &j)
        return j.bytes
    }

    /// `fileEntry`'s text appended to `text`.
    public static func appendFileEntry(_ f: FileRecord, first: Bool, to text: inout [UInt8]) {
        if f.orientation == nil && f.page == nil && f.split == nil && f.warning == nil,
           appendPlainEntry(f, first: first, to: &text) {
            return
        }
        var j = JSONText(depth: 2, first: first, continuing: &text)
        entry(f, into: &j)
        text = j.takeBytes()
    }

    /// The entry of most files (format, label, path and hash, no string to escape), as `entry`
    /// writes it, made in one piece on the stack and appended in one copy (a conversion writes
    /// one per image); false, with nothing written, for any other.
    private static func appendPlainEntry(_ f: FileRecord, first: Bool, to text: inout [UInt8]) -> Bool {
        var format = f.format, path = f.path, sha = f.sha256
        return format.withUTF8 { fm in
            path.withUTF8 { p in
                sha.withUTF8 { h in
                    guard !JSONText.needsEscape(fm) && !JSONText.needsEscape(p) && !JSONText.needsEscape(h) else { return false }
                    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 128 + fm.count + p.count + h.count) { buf in
                        var k = 0
                        func put(_ s: StaticString) {
                            (buf.baseAddress! + k).initialize(from: s.utf8Start, count: s.utf8CodeUnitCount)
                            k += s.utf8CodeUnitCount
                        }
                        func put(_ b: UnsafeBufferPointer<UInt8>) {
                            if let from = b.baseAddress { (buf.baseAddress! + k).initialize(from: from, count: b.count) }
                            k += b.count
                        }
                        if !first { put(",") }
                        put("\n    {\n      \"format\": \"")
                        put(fm)
                        put("\",\n      \"label\": ")
                        if f.label < 0 { put("-") }
                        JSONText.withDecimal(UInt64(f.label.magnitude)) { put($0) }
                        put(",\n      \"path\": \"")
                        put(p)
                        put("\",\n      \"sha256\": \"")
                        put(h)
                        put("\"\n    }")
                        text.append(contentsOf: UnsafeBufferPointer(rebasing: buf[..<k]))
                    }
                    return true
                }
            }
        }
    }

    private static func entry(_ f: FileRecord, into j: inout JSONText) {
        j.item(); j.beginObject()
        j.member("format", f.format)
        j.member("label", f.label)
        if let v = f.orientation { j.member("orientation", v) }
        if let v = f.page { j.member("page", v) }
        j.member("path", f.path)
        j.member("sha256", f.sha256)
        if let v = f.split { j.member("split", v) }
        if let v = f.warning { j.member("warning", v) }
        j.endObject()
    }

    /// Writes the JSON text (the same bytes as `encoded()`) to `sink` in pieces. With
    /// `fileEntries` (texts made by `fileEntry`) those are the `files` array and `files` is not
    /// used, so a manifest of any number of files is written with little memory.
    public func write(fileEntries: SpillBuffer?, to sink: ([UInt8]) throws -> Void) throws {
        var j = JSONText(capacity: 4096 + (fileEntries == nil ? files.count * 200 : 0))
        j.beginObject()
        if let check { j.key("check"); j.value(check) }
        j.key("classes"); j.beginArray()
        for c in classes { j.item(); j.beginObject(); j.member("count", c.count); j.member("index", c.index); j.member("name", c.name); j.endObject() }
        j.endArray()
        j.key("files"); j.beginArray()
        if let fileEntries {
            if fileEntries.byteCount > 0 {
                try sink(j.takeBytes())
                try fileEntries.replay(sink)
                j.elementsWritten()
            }
        } else {
            for f in files { Self.entry(f, into: &j) }
        }
        j.endArray()
        j.member("format", format)
        j.key("options"); j.beginObject()
        let o = options
        j.member("allowTruncatedJpeg", o.allowTruncatedJpeg)
        if let v = o.background { j.member("background", ints: v) }
        if let v = o.classes { j.member("classes", strings: v) }
        j.member("color", o.color)
        j.member("compress", o.compress)
        j.member("dtype", o.dtype)
        j.member("exifOrientation", o.exifOrientation)
        if let v = o.fit { j.member("fit", v) }
        if let v = o.frames { j.member("frames", v) }
        if let v = o.jpegDraft { j.member("jpegDraft", v) }
        if let v = o.labelDtype { j.member("labelDtype", v) }
        if let v = o.labels { j.member("labels", v) }
        if let v = o.layout { j.member("layout", v) }
        j.member("maxPixels", o.maxPixels)
        if let v = o.mean { j.member("mean", floats: v) }
        if let v = o.padColor { j.member("padColor", ints: v) }
        j.member("resizeFilter", o.resizeFilter)
        if let v = o.scale { j.member("scale", v) }
        if let v = o.shuffleSeed { j.member("shuffleSeed", v) }
        if let v = o.size { j.member("size", ints: v) }
        j.member("skipBad", o.skipBad)
        if let v = o.sort { j.member("sort", v) }
        if let v = o.split { j.member("split", v) }
        if let v = o.std { j.member("std", floats: v) }
        if let v = o.stratify { j.member("stratify", v) }
        j.member("tiffPages", o.tiffPages)
        j.endObject()
        j.key("output"); j.beginObject(); j.member("format", output.format); j.member("name", output.name); j.endObject()
        if let shard {
            j.key("shard"); j.beginObject()
            j.member("count", shard.count)
            j.member("index", shard.index)
            j.member("planHash", shard.planHash)
            j.key("ranges"); j.beginObject()
            for name in shard.ranges.keys.sorted() { j.member(name, ints: shard.ranges[name]!) }
            j.endObject()
            j.member("skippedBySplit", counts: shard.skippedBySplit)
            j.endObject()
        }
        j.key("skipped"); j.beginArray()
        for s in skipped { j.item(); j.beginObject(); j.member("path", s.path); j.member("reason", s.reason); j.endObject() }
        j.endArray()
        j.key("source"); j.beginObject(); j.member("kind", source.kind); j.member("root", source.root); j.endObject()
        j.key("summary"); j.beginObject()
        if let v = summary.formats { j.member("formats", counts: v) }
        if let v = summary.ignoredFrames { j.member("ignoredFrames", v) }
        j.member("ignoredTiffPages", summary.ignoredTiffPages)
        j.member("images", summary.images)
        j.member("rotated", summary.rotated)
        j.member("skipped", summary.skipped)
        j.member("skippedByReason", counts: summary.skippedByReason)
        if let v = summary.splits { j.member("splits", counts: v) }
        j.endObject()
        j.key("tensors"); j.beginArray()
        for t in tensors {
            j.item(); j.beginObject()
            j.member("dtype", t.dtype); j.member("name", t.name)
            if let v = t.sha256 { j.member("sha256", v) }
            j.member("shape", ints: t.shape)
            if let v = t.xxh3 { j.member("xxh3", v) }
            j.endObject()
        }
        j.endArray()
        j.key("tool"); j.beginObject(); j.member("name", tool.name); j.member("version", tool.version); j.endObject()
        j.member("version", version)
        j.member("warnings", strings: warnings)
        j.endObject()
        var data = j.takeBytes()
        data.append(0x0A)
        try sink(data)
    }

    /// - Throws: `ImgConvError` `.corruptInput` naming the path when the JSON does not decode.
    public static func decode(_ bytes: [UInt8], path: String) throws -> Manifest {
        do {
            let m = try JSONDecoder().decode(Manifest.self, from: Data(bytes))
            guard m.format == formatName else {
                throw ImgConvError(.corruptInput, path: path, "not an imgconv manifest (format '\(m.format)')")
            }
            guard let algorithm = m.tensorHash else {
                throw ImgConvError(.corruptInput, path: path, "manifest version \(m.version) is not one this imgconv reads (1 to \(currentVersion))")
            }
            let other: TensorHashAlgorithm = algorithm == .sha256 ? .xxh3 : .sha256
            for t in m.tensors {
                guard t.digest(other) == nil else {
                    throw ImgConvError(.corruptInput, path: path,
                                       "manifest is not valid: tensor '\(t.name)' has a '\(other.key)', which manifest version \(m.version) does not record")
                }
                guard let digest = t.digest(algorithm), digest.utf8.count == algorithm.hexDigits,
                      digest.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else {
                    throw ImgConvError(.corruptInput, path: path,
                                       "manifest is not valid: tensor '\(t.name)' has no '\(algorithm.key)' of \(algorithm.hexDigits) lowercase hex digits (manifest version \(m.version))")
                }
            }
            return m
        } catch let e as ImgConvError {
            throw e
        } catch {
            throw ImgConvError(.corruptInput, path: path, "manifest is not valid: \(error)")
        }
    }
}

public enum ToolInfo {
    public static let name = "imgconv"
    public static let version = "0.1.0"
}
