import ImgConvCore

/// The header of an IDX file (LeCun's MNIST format): two zero bytes, a type byte, the number of
/// dimensions, then each dimension as a big-endian u32; the data follows in C order with
/// multi-byte values big-endian. There is no trailer: the file ends with the data.
public struct IDXHeader: Equatable, Sendable {
    /// The element types IDX defines (0x0A is unassigned).
    public enum ElementType: UInt8, CaseIterable, Sendable {
        case uint8 = 0x08, int8 = 0x09, int16 = 0x0B, int32 = 0x0C, float32 = 0x0D, float64 = 0x0E

        public var dtype: DType {
            switch self {
            case .uint8: return .uint8
            case .int8: return .int8
            case .int16: return .int16
            case .int32: return .int32
            case .float32: return .float32
            case .float64: return .float64
            }
        }

        public init?(dtype: DType) {
            guard let match = Self.allCases.first(where: { $0.dtype == dtype }) else { return nil }
            self = match
        }

        /// The word file names use for the type (`train-images-idx3-ubyte`), after the format's
        /// own description: unsigned byte, signed byte, short, int, float, double.
        public var fileNameWord: String {
            switch self {
            case .uint8: return "ubyte"
            case .int8: return "sbyte"
            case .int16: return "short"
            case .int32: return "int"
            case .float32: return "float"
            case .float64: return "double"
            }
        }
    }

    public var type: ElementType
    public var dims: [Int]

    public init(type: ElementType, dims: [Int]) {
        self.type = type
        self.dims = dims
    }

    public var byteCount: Int { 4 + 4 * dims.count }

    /// Bytes of data the dimensions call for, or nil when the product overflows.
    public var dataLength: Int? { checkedByteCount(dims, elementSize: type.dtype.byteSize) }

    public func encoded() -> [UInt8] {
        var out: [UInt8] = [0, 0, type.rawValue, UInt8(dims.count)]
        for d in dims {
            let v = UInt32(d)
            out += [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)]
        }
        return out
    }

    /// Reads and validates the header at the start of `stream`, field by field.
    /// - Throws: `.corruptInput` naming `path`, the field and the value found.
    public static func read(from stream: ByteStream, path: String) throws -> IDXHeader {
        func fail(_ why: String) -> ImgConvError { ImgConvError(.corruptInput, path: path, "IDX header: \(why)") }
        let magic = try stream.read(count: 4)
        guard magic.count == 4 else { throw fail("file is only \(magic.count) bytes, a header needs at least 4") }
        guard magic[0] == 0, magic[1] == 0 else {
            throw fail(cFormat("magic bytes 0-1 are 0x%02x 0x%02x, expected 0x00 0x00", magic[0], magic[1]))
        }
        guard let type = ElementType(rawValue: magic[2]) else {
            throw fail(cFormat("type byte is 0x%02x, expected one of 0x08 0x09 0x0b 0x0c 0x0d 0x0e", magic[2]))
        }
        let ndims = Int(magic[3])
        guard ndims >= 1 else { throw fail("number of dimensions (byte 3) is 0") }
        let raw = try stream.read(count: 4 * ndims)
        guard raw.count == 4 * ndims else {
            throw fail("\(ndims) dimensions need \(4 + 4 * ndims) header bytes, the file has \(4 + raw.count)")
        }
        var dims: [Int] = []
        for k in 0..<ndims {
            let v = UInt32(raw[4 * k]) << 24 | UInt32(raw[4 * k + 1]) << 16 | UInt32(raw[4 * k + 2]) << 8 | UInt32(raw[4 * k + 3])
            dims.append(Int(v))
        }
        let header = IDXHeader(type: type, dims: dims)
        guard header.dataLength != nil else { throw fail("dimensions \(dimsText(dims)) overflow") }
        return header
    }

    /// The error for data that is not as long as the dimensions say.
    /// The data goes on past the length the dimensions give (found at the first byte beyond it,
    /// without reading further).
    func overLengthError(path: String) -> ImgConvError {
        ImgConvError(.corruptInput, path: path,
                     "IDX data goes on past the \(dataLength ?? 0) bytes that dimensions \(dimsText(dims)) of \(type.dtype.rawValue) need")
    }

    func lengthError(path: String, actual: Int) -> ImgConvError {
        ImgConvError(.corruptInput, path: path,
                     "IDX data is \(actual) bytes, dimensions \(dimsText(dims)) of \(type.dtype.rawValue) need \(dataLength ?? 0)")
    }
}

func dimsText(_ dims: [Int]) -> String { dims.map(String.init).joined(separator: "x") }

/// Reverses the bytes of every `elementSize`-byte element in place (little- <-> big-endian).
func swapByteOrder(_ buffer: UnsafeMutableRawBufferPointer, elementSize: Int) {
    guard elementSize > 1, let base = buffer.baseAddress else { return }
    let count = buffer.count / elementSize
    let aligned = Int(bitPattern: base) % elementSize == 0
    switch aligned ? elementSize : 0 {
    case 2:
        let p = base.assumingMemoryBound(to: UInt16.self)
        for i in 0..<count { p[i] = p[i].byteSwapped }
    case 4:
        let p = base.assumingMemoryBound(to: UInt32.self)
        for i in 0..<count { p[i] = p[i].byteSwapped }
    case 8:
        let p = base.assumingMemoryBound(to: UInt64.self)
        for i in 0..<count { p[i] = p[i].byteSwapped }
    default:
        let b = base.assumingMemoryBound(to: UInt8.self)
        for i in 0..<count {
            var lo = i * elementSize, hi = lo + elementSize - 1
            while lo < hi { b.swapAt(lo, hi); lo += 1; hi -= 1 }
        }
    }
}

private extension UnsafeMutablePointer where Pointee == UInt8 {
    func swapAt(_ i: Int, _ j: Int) { let t = self[i]; self[i] = self[j]; self[j] = t }
}
