import ImgConvCore

/// The streaming writer protocol every output format implements. A dataset is written as one or
/// more parts (splits), each a pair of tensors named by `names`: for each part `begin` (the first
/// call opens the output), the images one by one in dataset order, then `endPart` with their
/// labels; after the last part `finish` writes the class names. Nothing appears at the output path
/// before `commit()`; `abort()` leaves any earlier output untouched.
public protocol DatasetWriter: AnyObject {
    /// Names of the tensors of the part `begin` starts next (`trainXs`/`trainYs` by default).
    var names: TensorNames { get set }
    /// How labels are stored (dtype, one-hot).
    var labelEncoding: LabelEncoding { get set }
    /// Starts a part (the first call opens the output) for images of any element type and item
    /// shape. `count` is the planned number of images; fewer may arrive (skipped files).
    /// - Throws: `.unsupported` when the format cannot hold the type or shape.
    func begin(images: TensorLayout, count: Int) throws
    /// Appends one image's bytes (`layout.bytesPerItem`, C order, little-endian).
    func append(image: UnsafeRawBufferPointer) throws
    /// The same, for an image the writer may keep until it is written and hashed (no copy).
    func append(image: [UInt8]) throws
    /// Appends `count` images lying one after another in `images` (a merge's block of a part);
    /// the default appends them one by one.
    func append(images: UnsafeRawBufferPointer, count: Int) throws
    /// Ends the current part: its images tensor, then its labels (one per appended image).
    func endPart(labels: LabelColumn) throws -> [Manifest.TensorRecord]
    /// Writes the class names after the last part; returns what was written.
    func finish(classNames: [String]) throws -> [Manifest.TensorRecord]
    /// Stores the manifest inside the output too, for formats that can (HDF5: the root attribute
    /// `imgconv_manifest`). Called after `finish` and before `commit`; the default does nothing.
    /// `json` is the same bytes on return (a writer may add a NUL and remove it again: no copy
    /// of a manifest of megabytes).
    func embedManifest(_ json: inout [UInt8]) throws
    /// Whether `embedManifest` stores the manifest (then it is made in memory, not streamed).
    var embedsManifest: Bool { get }
    /// Starts the disk write of the finished output without waiting for it (before the manifest
    /// is made, so that the two are synced together by `commit`). A hint.
    func startWriteback() throws
    /// Moves the finished output into place.
    func commit() throws
    /// Removes what was written; any earlier output stays as it was. The writer can then start
    /// over: the next `begin` opens a new output.
    func abort()
    /// Where the manifest goes.
    var manifestPath: String { get }
    /// Refuses, before any work, targets that the output would have to replace but must not: a
    /// folder, FIFO, socket or device where a file goes (`checkOutputFileTarget`), anything but a
    /// folder where the output folder goes. Writing checks each target again when it creates it
    /// and before it renames it into place; this only makes the refusal come first.
    /// - Throws: `.io` naming the target.
    func checkTargets() throws
    /// The files the output renames into place (as far as they are known before the data: the
    /// manifest, and the data files the format names in advance), which must not be inputs.
    var outputFiles: [String] { get }
}

extension DatasetWriter {
    /// Writers whose library writes the file (HDF5) sync it at commit only.
    public func startWriteback() throws {}

    public func append(images: UnsafeRawBufferPointer, count: Int) throws {
        guard count > 0 else { return }
        let size = images.count / count
        precondition(size * count == images.count, "a block of whole images")
        for k in 0..<count {
            try append(image: UnsafeRawBufferPointer(rebasing: images[(k * size)..<((k + 1) * size)]))
        }
    }

    public func begin(plan: ImagePlan, count: Int) throws {
        try begin(images: TensorLayout(plan: plan), count: count)
    }

    public func endPart(labels: [Int64]) throws -> [Manifest.TensorRecord] {
        try endPart(labels: LabelColumn(labels))
    }

    /// One part and the class names: what a dataset without splits writes.
    public func finish(labels: [Int64], classNames: [String]) throws -> [Manifest.TensorRecord] {
        if labelEncoding.classCount == 0 { labelEncoding.classCount = classNames.count }
        return try endPart(labels: labels) + finish(classNames: classNames)
    }

    /// The manifest's target only; writers add their own files.
    public func checkTargets() throws { try checkOutputFileTarget(manifestPath) }
    public var outputFiles: [String] { [manifestPath] }
    public func embedManifest(_ json: inout [UInt8]) throws {}
    public func append(image: [UInt8]) throws { try image.withUnsafeBytes { try append(image: $0) } }
    public var embedsManifest: Bool { false }
}

/// The labels of a part, as `endPart` takes them: an array, or the paged column of 4-byte labels
/// a conversion collects (no 8-byte copy of a million labels).
public struct LabelColumn: RandomAccessCollection, Sendable {
    private let array: [Int64]?
    private let paged: PagedArray<Int32>?

    public init(_ labels: [Int64]) {
        array = labels
        paged = nil
    }

    public init(_ labels: PagedArray<Int32>) {
        array = nil
        paged = labels
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { array?.count ?? paged!.count }
    public subscript(i: Int) -> Int64 {
        if let array { return array[i] }
        return Int64(paged![i])
    }
}

/// How labels are stored: class indices of a dtype, or one-hot rows.
public struct LabelEncoding: Sendable, Equatable {
    /// Any integer type (for one-hot rows also float16/32/64); nil = the format's default (int64;
    /// for IDX the narrowest type for the class count).
    public var dtype: DType?
    /// (N, classes) rows of 0 and 1 instead of (N,) indices.
    public var onehot: Bool
    public var classCount: Int

    public init(dtype: DType? = nil, onehot: Bool = false, classCount: Int = 0) {
        self.dtype = dtype
        self.onehot = onehot
        self.classCount = classCount
    }

    /// The shape of one label: `[classCount]` one-hot, else a scalar.
    public var itemShape: [Int] { onehot ? [classCount] : [] }

    /// The labels as little-endian data of `dtype` and the shape of one label.
    /// - Throws: `.invalidArgument` when a label does not fit the type.
    public func encode(_ labels: LabelColumn, dtype: DType) throws -> (itemShape: [Int], data: [UInt8]) {
        var data: [UInt8] = []
        data.reserveCapacity(labels.count * (onehot ? classCount : 1) * dtype.byteSize)
        try encode(labels, dtype: dtype) { data.append(contentsOf: $0) }
        return (itemShape, data)
    }

    /// The same data handed over in pieces of about `pieceBytes` (whole labels), so that a writer
    /// streams it: a million int64 labels are not 8 MB at once.
    public func encode(_ labels: LabelColumn, dtype: DType, pieceBytes: Int = 64 << 10,
                       _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let size = dtype.byteSize
        guard onehot || !dtype.isFloatingPoint else {
            throw ImgConvError(.invalidArgument, "class indices cannot be stored as \(dtype.rawValue) (one-hot rows can)")
        }
        let maxValue = dtype.isFloatingPoint ? 1 : dtype.isSigned ? Int64.max >> (64 - 8 * size) : Int64(truncatingIfNeeded: UInt64.max >> (64 - 8 * size) & UInt64(Int64.max))
        // The bytes of a one-hot 1 in this type (little-endian).
        let one: UInt64 = switch dtype {
        case .float16: 0x3C00
        case .float32: 0x3F80_0000
        case .float64: 0x3FF0_0000_0000_0000
        default: 1
        }
        let rowBytes = (onehot ? classCount : 1) * size
        guard rowBytes > 0 else { return }
        let rowsPerPiece = max(1, pieceBytes / rowBytes)
        var piece = [UInt8](repeating: 0, count: min(labels.count, rowsPerPiece) * rowBytes)
        var first = 0
        while first < labels.count {
            let rows = min(rowsPerPiece, labels.count - first)
            try piece.withUnsafeMutableBytes { buf in
                if onehot { buf.baseAddress!.initializeMemory(as: UInt8.self, repeating: 0, count: rows * rowBytes) }
                for r in 0..<rows {
                    let v = labels[first + r]
                    guard v >= 0 && (onehot ? v < classCount : v <= maxValue) else {
                        throw ImgConvError(.invalidArgument, "label \(v) does not fit \(dtype.rawValue) labels")
                    }
                    let at = r * rowBytes + (onehot ? Int(v) * size : 0)
                    let value = onehot ? one : UInt64(bitPattern: v)
                    for b in 0..<size { buf[at + b] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(b))) }
                }
                try body(UnsafeRawBufferPointer(rebasing: buf[0..<(rows * rowBytes)]))
            }
            first += rows
        }
    }
}

/// Element type and shape of one image of an image tensor (the tensor is N images of it).
public struct TensorLayout: Sendable, Equatable {
    public var dtype: DType
    /// The shape of one image, e.g. (H, W, C).
    public var itemShape: [Int]
    /// Which axis of `itemShape` holds the channels (2 for H, W, C; 0 for C, H, W), when known.
    public var channelAxis: Int?

    public init(dtype: DType, itemShape: [Int], channelAxis: Int? = nil) {
        self.dtype = dtype
        self.itemShape = itemShape
        self.channelAxis = channelAxis
    }

    public init(plan: ImagePlan) {
        self.init(dtype: plan.dtype, itemShape: plan.shape, channelAxis: plan.layout == .nchw ? 0 : 2)
    }

    public var bytesPerItem: Int { itemShape.reduce(dtype.byteSize, *) }

    /// The shape of a tensor of `count` images.
    public func shape(count: Int) -> [Int] { [count] + itemShape }
}

/// Names of the tensors of one split.
public struct TensorNames: Sendable, Equatable {
    public var images = "trainXs"
    public var labels = "trainYs"
    public var classNames = "classNames"
    public init() {}

    /// `<prefix>Xs` and `<prefix>Ys` (`train`, `val`, `test`).
    public init(prefix: String) {
        images = prefix + "Xs"
        labels = prefix + "Ys"
    }

    /// The split a pair belongs to (`trainXs` -> `train`).
    public var prefix: String { images.hasSuffix("Xs") ? String(images.dropLast(2)) : images }
}

/// Encodings of the small arrays that travel with the images.
enum SmallArrays {
    /// The NPY header of the labels; their data comes from `encoding.encode(labels, dtype:)` in pieces.
    static func labelsHeader(_ labels: LabelColumn, _ encoding: LabelEncoding) -> (NPYHeader, DType) {
        let dtype = encoding.dtype ?? .int64
        return (NPYHeader(descr: dtype.npyDescr, shape: [labels.count] + encoding.itemShape), dtype)
    }

    /// Class names as numpy `<U{n}`: n = the longest name in code points (at least 1), each
    /// element n UTF-32LE units, NUL-padded.
    static func classNames(_ names: [String]) -> (NPYHeader, [UInt8]) {
        let width = max(1, names.map { $0.unicodeScalars.count }.max() ?? 1)
        var data = [UInt8](repeating: 0, count: names.count * width * 4)
        for (i, name) in names.enumerated() {
            for (k, scalar) in name.unicodeScalars.enumerated() {
                let at = (i * width + k) * 4
                let v = scalar.value
                data[at] = UInt8(v & 0xFF)
                data[at + 1] = UInt8((v >> 8) & 0xFF)
                data[at + 2] = UInt8((v >> 16) & 0xFF)
                data[at + 3] = UInt8(v >> 24)
            }
        }
        return (NPYHeader(descr: "<U\(width)", shape: [names.count]), data)
    }

    static func record(_ name: String, _ header: NPYHeader, _ data: [UInt8]) -> Manifest.TensorRecord {
        Manifest.TensorRecord(name: name, shape: header.shape, dtype: dtypeName(header.descr), digest: tensorDigest(data))
    }
}

/// numpy's name of an NPY descr (`'<U7'` -> `str`... kept as the descr for strings).
func dtypeName(_ descr: String) -> String {
    DType(npyDescr: descr)?.rawValue ?? descr
}

/// Decodes numpy `<U{n}` data (UTF-32LE, NUL-padded) into strings.
public func decodeUnicodeArray(_ bytes: [UInt8], descr: String, count: Int) -> [String] {
    guard descr.hasPrefix("<U"), let width = Int(descr.dropFirst(2)), width > 0, bytes.count == count * width * 4 else { return [] }
    return (0..<count).map { i in
        var s = String.UnicodeScalarView()
        for k in 0..<width {
            let at = (i * width + k) * 4
            let v = UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24
            if v == 0 { break }
            if let scalar = Unicode.Scalar(v) { s.append(scalar) }
        }
        return String(s)
    }
}
