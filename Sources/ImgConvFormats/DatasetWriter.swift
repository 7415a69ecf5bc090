import ImgConvCore

/// The streaming writer protocol every output format implements: images arrive one by one in
/// dataset order, labels and class names at the end. Nothing appears at the output path before
/// `commit()`; `abort()` leaves any earlier output untouched.
public protocol DatasetWriter: AnyObject {
    /// Opens the output. `count` is the planned number of images; fewer may arrive (skipped files).
    func begin(plan: ImagePlan, count: Int) throws
    /// Opens the output for images of any element type and item shape (what `convert` copies
    /// from another container). `begin(plan:count:)` calls this by default.
    /// - Throws: `.unsupported` when the format cannot hold the type or shape.
    func begin(images: TensorLayout, count: Int) throws
    /// Appends one image's bytes (`plan.bytesPerImage`, C order, little-endian).
    func append(image: UnsafeRawBufferPointer) throws
    /// Writes the labels (one per appended image) and class names; returns what was written.
    func finish(labels: [Int64], classNames: [String]) throws -> [Manifest.TensorRecord]
    /// Stores the manifest inside the output too, for formats that can (HDF5: the root attribute
    /// `imgconv_manifest`). Called after `finish` and before `commit`; the default does nothing.
    func embedManifest(_ json: [UInt8]) throws
    /// Moves the finished output into place.
    func commit() throws
    func abort()
    /// Where the manifest goes.
    var manifestPath: String { get }
}

extension DatasetWriter {
    public func begin(plan: ImagePlan, count: Int) throws {
        try begin(images: TensorLayout(plan: plan), count: count)
    }

    public func embedManifest(_ json: [UInt8]) throws {}
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
public struct TensorNames: Sendable {
    public var images = "trainXs"
    public var labels = "trainYs"
    public var classNames = "classNames"
    public init() {}
}

/// Encodings of the small arrays that travel with the images.
enum SmallArrays {
    static func labels(_ labels: [Int64]) -> (NPYHeader, [UInt8]) {
        var data = [UInt8](repeating: 0, count: labels.count * 8)
        data.withUnsafeMutableBytes { buf in
            for (i, v) in labels.enumerated() { buf.storeBytes(of: v.littleEndian, toByteOffset: i * 8, as: Int64.self) }
        }
        return (NPYHeader(descr: DType.int64.npyDescr, shape: [labels.count]), data)
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
        Manifest.TensorRecord(name: name, shape: header.shape, dtype: dtypeName(header.descr), sha256: sha256Hex(data))
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
