/// Little-endian field encoding for binary headers.
struct LEBytes {
    var bytes: [UInt8] = []
    mutating func u16(_ v: Int) { bytes += [UInt8(v & 0xFF), UInt8((v >> 8) & 0xFF)] }
    mutating func u32(_ v: UInt32) { for k in 0..<4 { bytes.append(UInt8((v >> (8 * UInt32(k))) & 0xFF)) } }
    mutating func u32(_ v: Int) { u32(UInt32(truncatingIfNeeded: v)) }
    mutating func u64(_ v: Int) { for k in 0..<8 { bytes.append(UInt8((UInt64(v) >> (8 * UInt64(k))) & 0xFF)) } }
    mutating func raw(_ b: [UInt8]) { bytes += b }
}

/// Reads little-endian fields from a byte array, checking bounds.
struct LEReader {
    let bytes: [UInt8]
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    func has(_ offset: Int, _ count: Int) -> Bool { offset >= 0 && count >= 0 && offset + count <= bytes.count }
    func u16(_ o: Int) -> Int { Int(bytes[o]) | Int(bytes[o + 1]) << 8 }
    func u32(_ o: Int) -> UInt32 { (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[o + $1]) << (8 * UInt32($1)) } }
    func u64(_ o: Int) -> UInt64 { (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[o + $1]) << (8 * UInt64($1)) } }
}
