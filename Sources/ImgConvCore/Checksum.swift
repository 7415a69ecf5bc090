import Crypto

/// Incremental SHA-256, hex-encoded on `finish()`.
public struct SHA256Stream {
    private var hasher = SHA256()
    public init() {}
    public mutating func update(_ bytes: UnsafeRawBufferPointer) { hasher.update(bufferPointer: bytes) }
    public mutating func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { hasher.update(bufferPointer: $0) } }
    public func finish() -> String { hex(hasher.finalize()) }
    /// The 32 bytes of the digest.
    public func finishBytes() -> [UInt8] { Array(hasher.finalize()) }
}

/// SHA-256 of a byte array, its 32 bytes.
public func sha256Bytes(_ bytes: [UInt8]) -> [UInt8] {
    bytes.withUnsafeBytes { Array(SHA256.hash(data: $0)) }
}

/// SHA-256 of a byte array, as lowercase hex.
public func sha256Hex(_ bytes: [UInt8]) -> String {
    bytes.withUnsafeBytes { hex(SHA256.hash(data: $0)) }
}

private func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
    let digits: [UInt8] = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    out.reserveCapacity(64)
    for b in digest {
        out.append(digits[Int(b >> 4)])
        out.append(digits[Int(b & 15)])
    }
    return String(decoding: out, as: UTF8.self)
}
