/// Element types of the tensors imgconv writes and reads, named as numpy names them. imgconv
/// writes uint8, uint16, float16, float32 images (uint32, int32 and float64 for TIFFs whose
/// samples nothing narrower holds) and uint8/int32/int64 labels; int8 and int16 come from IDX
/// files and HDF5 files of other tools.
public enum DType: String, Codable, Sendable, CaseIterable {
    case uint8, uint16, int64, float32, float16, int32
    case int8, int16, float64, uint32

    public var byteSize: Int {
        switch self {
        case .uint8, .int8: return 1
        case .uint16, .int16, .float16: return 2
        case .float32, .int32, .uint32: return 4
        case .int64, .float64: return 8
        }
    }

    /// The NPY `descr` (little-endian; one-byte types use `|`).
    public var npyDescr: String {
        switch self {
        case .uint8: return "|u1"
        case .uint16: return "<u2"
        case .int64: return "<i8"
        case .float32: return "<f4"
        case .float16: return "<f2"
        case .int8: return "|i1"
        case .int16: return "<i2"
        case .int32: return "<i4"
        case .float64: return "<f8"
        case .uint32: return "<u4"
        }
    }

    public var isFloatingPoint: Bool { self == .float16 || self == .float32 || self == .float64 }
    public var isSigned: Bool { self != .uint8 && self != .uint16 && self != .uint32 }

    public init?(npyDescr: String) {
        guard let match = DType.allCases.first(where: { $0.npyDescr == npyDescr }) else { return nil }
        self = match
    }
}

/// How many bytes a shape of this element size holds, or nil when the product overflows.
public func checkedByteCount(_ shape: [Int], elementSize: Int) -> Int? {
    var total = elementSize
    for dim in shape {
        guard dim >= 0 else { return nil }
        let (product, overflow) = total.multipliedReportingOverflow(by: dim)
        if overflow { return nil }
        total = product
    }
    return total
}

extension DType {
    /// One element of this type (little-endian, at any alignment) as a Double.
    public func value(in raw: UnsafeRawBufferPointer, at offset: Int) -> Double {
        switch self {
        case .uint8: return Double(raw[offset])
        case .int8: return Double(Int8(bitPattern: raw[offset]))
        case .uint16: return Double(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
        case .int16: return Double(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: Int16.self)))
        case .int32: return Double(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: Int32.self)))
        case .uint32: return Double(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
        case .int64: return Double(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: Int64.self)))
        case .float16:
            return Double(Float16(bitPattern: UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt16.self))))
        case .float32:
            return Double(Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self))))
        case .float64:
            return Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self)))
        }
    }
}
