/// Element types of the tensors imgconv writes, named as numpy names them.
public enum DType: String, Codable, Sendable, CaseIterable {
    case uint8, uint16, int64, float32

    public var byteSize: Int {
        switch self {
        case .uint8: return 1
        case .uint16: return 2
        case .float32: return 4
        case .int64: return 8
        }
    }

    /// The NPY `descr` (little-endian; one-byte types use `|`).
    public var npyDescr: String {
        switch self {
        case .uint8: return "|u1"
        case .uint16: return "<u2"
        case .int64: return "<i8"
        case .float32: return "<f4"
        }
    }

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
