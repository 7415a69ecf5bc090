import COpenSSL
import CXXH3

/// Incremental SHA-256 (OpenSSL's libcrypto), hex-encoded on `finish()`.
public struct SHA256Stream {
    private var context = SHA256_CTX()
    public init() { SHA256_Init(&context) }
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        if let base = bytes.baseAddress { SHA256_Update(&context, base, bytes.count) }
    }
    public mutating func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { update($0) } }
    public func finish() -> String { hex(finishBytes()) }
    /// The 32 bytes of the digest (the stream itself is left as it was: finishing works on a copy).
    public func finishBytes() -> [UInt8] {
        var copy = context
        return [UInt8](unsafeUninitializedCapacity: Int(SHA256_DIGEST_LENGTH)) { out, n in
            SHA256_Final(out.baseAddress, &copy)
            n = Int(SHA256_DIGEST_LENGTH)
        }
    }
}

/// SHA-256 of a byte array, its 32 bytes.
public func sha256Bytes(_ bytes: [UInt8]) -> [UInt8] {
    var stream = SHA256Stream()
    stream.update(bytes)
    return stream.finishBytes()
}

/// SHA-256 of a byte array, as lowercase hex.
public func sha256Hex(_ bytes: [UInt8]) -> String {
    // The digest on the stack and its hex written straight into the string: one allocation (the
    // string's), as this runs once per source file.
    var context = SHA256_CTX()
    SHA256_Init(&context)
    bytes.withUnsafeBytes { if let base = $0.baseAddress { _ = SHA256_Update(&context, base, $0.count) } }
    var digest: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
    return withUnsafeMutableBytes(of: &digest) { d in
        SHA256_Final(d.baseAddress!.assumingMemoryBound(to: UInt8.self), &context)
        return hex(UnsafeRawBufferPointer(d))
    }
}

/// The XXH3 builds of `Sources/CXXH3` this CPU runs, narrowest first: libxxhash's always,
/// xxHash's AVX2 and AVX-512 code where the CPU (and kernel) run them.
public func runnableXXH3Builds() -> [UnsafePointer<imc_xxh3_build>] {
    Array(sequence(state: 0) { i in defer { i += 1 }; return imc_xxh3_runnable(i) })
}

/// The tensor checksum of manifest version 2 (`tensors[].xxh3` in `Schemas/manifest.schema.json`):
/// the data bytes are cut into chunks of `chunkSize` bytes (the last one shorter; no bytes, no
/// chunks); each chunk's XXH3-128 (seed 0) in its 16-byte canonical (big-endian) form; the value
/// is the XXH3-128 (seed 0) of those digests concatenated in chunk order, as 32 hex digits.
/// Chunks can be hashed apart (`chunkDigest`) and their digests added in order (`add(chunkDigest:)`).
public final class ChunkedXXH3 {
    public static let chunkSize = 4 << 20

    /// The XXH3 build hashing (by default the process's, `imc_xxh3_best`: AVX-512, AVX2 or libxxhash's SSE2).
    private let build: imc_xxh3_build
    private let chunkState: UnsafeMutableRawPointer
    private let listState: UnsafeMutableRawPointer
    /// Bytes of the current chunk hashed so far (0 to chunkSize - 1 between calls).
    private var inChunk = 0
    private var finished = false

    /// `build`: the XXH3 build to use (tests compare them); by default the process's.
    public init(build: UnsafePointer<imc_xxh3_build> = imc_xxh3_best()) {
        self.build = build.pointee
        // The only failure is malloc's, for two small states: as any other allocation's, fatal.
        guard let a = self.build.create(), let b = self.build.create() else { fatalError("out of memory") }
        chunkState = a
        listState = b
    }

    deinit {
        build.destroy(chunkState)
        build.destroy(listState)
    }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        precondition(!finished, "update after finish")
        guard var p = bytes.baseAddress else { return }
        var left = bytes.count
        while left > 0 {
            let n = min(left, Self.chunkSize - inChunk)
            if inChunk == 0 && n == Self.chunkSize {
                add(build.hash(p, n))   // a whole chunk in one piece: hashed in one call
            } else {
                build.update(chunkState, p, n)
                inChunk += n
                if inChunk == Self.chunkSize {
                    add(build.digest(chunkState))
                    build.reset(chunkState)
                    inChunk = 0
                }
            }
            p += n
            left -= n
        }
    }

    public func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { update($0) } }

    /// Adds the digest of a whole chunk hashed elsewhere (`chunkDigest`), in chunk order. Only
    /// between whole chunks: not after `update` left a partial one.
    public func add(chunkDigest digest: [UInt8]) {
        precondition(!finished && inChunk == 0 && digest.count == 16, "a chunk digest between whole chunks")
        digest.withUnsafeBytes { build.update(listState, $0.baseAddress, 16) }
    }

    /// The 16-byte canonical digest of one chunk (at most `chunkSize` bytes).
    public static func chunkDigest(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        precondition(bytes.count <= chunkSize, "one chunk")
        return canonical(imc_xxh3_best().pointee.hash(bytes.baseAddress, bytes.count))
    }

    /// The checksum, 32 lowercase hex digits.
    public func finish() -> String {
        precondition(!finished, "finish twice")
        if inChunk > 0 {
            add(build.digest(chunkState))
            inChunk = 0
        }
        finished = true
        return hex(Self.canonical(build.digest(listState)))
    }

    private func add(_ h: imc_xxh128) {
        Self.canonical(h).withUnsafeBytes { build.update(listState, $0.baseAddress, 16) }
    }

    /// XXH128's canonical form: the high 64 bits then the low 64 bits, each big-endian.
    private static func canonical(_ h: imc_xxh128) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 16)
        for i in 0..<8 {
            out[i] = UInt8(truncatingIfNeeded: h.high64 >> (56 - 8 * UInt64(i)))
            out[8 + i] = UInt8(truncatingIfNeeded: h.low64 >> (56 - 8 * UInt64(i)))
        }
        return out
    }
}

/// The checksum of a tensor's data bytes a manifest records: SHA-256 in version 1, the chunked
/// XXH3-128 (`ChunkedXXH3`) from version 2 on.
public enum TensorHashAlgorithm: Sendable, Equatable {
    case sha256
    case xxh3

    /// The algorithm of the manifests this imgconv writes.
    public static let current = TensorHashAlgorithm.xxh3

    /// The algorithm of a manifest version (nil: a version imgconv does not know).
    public init?(manifestVersion: Int) {
        switch manifestVersion {
        case 1: self = .sha256
        case 2: self = .xxh3
        default: return nil
        }
    }

    /// The member of a tensor record that holds it.
    public var key: String {
        switch self {
        case .sha256: "sha256"
        case .xxh3: "xxh3"
        }
    }

    /// Its name in messages.
    public var displayName: String {
        switch self {
        case .sha256: "SHA-256"
        case .xxh3: "XXH3-128 (of 4 MiB chunks)"
        }
    }

    /// How many hex digits a value has.
    public var hexDigits: Int {
        switch self {
        case .sha256: 64
        case .xxh3: 32
        }
    }
}

/// A tensor checksum of either algorithm, computed as the bytes pass.
public struct TensorHasher {
    public let algorithm: TensorHashAlgorithm
    private var sha: SHA256Stream?
    private let xxh: ChunkedXXH3?

    public init(_ algorithm: TensorHashAlgorithm = .current) {
        self.algorithm = algorithm
        sha = algorithm == .sha256 ? SHA256Stream() : nil
        xxh = algorithm == .xxh3 ? ChunkedXXH3() : nil
    }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        sha?.update(bytes)
        xxh?.update(bytes)
    }

    public mutating func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { update($0) } }

    /// The value as hex (the hasher is not to be used again).
    public func finish() -> String { sha?.finish() ?? xxh!.finish() }
}

/// A tensor checksum of the current algorithm, of a byte array.
public func tensorDigest(_ bytes: [UInt8]) -> String {
    var h = TensorHasher()
    h.update(bytes)
    return h.finish()
}

/// Bytes as lowercase hex, written straight into the string.
private func hex<D: Collection>(_ digest: D) -> String where D.Element == UInt8 {
    String(unsafeUninitializedCapacity: 2 * digest.count) { out in
        var k = 0
        for b in digest {
            out[k] = hexDigit(b >> 4)
            out[k + 1] = hexDigit(b & 15)
            k += 2
        }
        return k
    }
}

/// The lowercase hex digit of a value 0-15.
@inline(__always) private func hexDigit(_ v: UInt8) -> UInt8 { v < 10 ? 0x30 + v : 0x57 + v }
