import FoundationEssentials
import Glibc
import ImgConvCore

/// The tensor checksum (`TensorHasher`: the chunked XXH3-128 of manifest version 2 unless asked
/// for another) and, when asked, zlib's CRC-32 of a byte stream. XXH3 is computed on the caller's
/// thread as the bytes arrive (it is cheaper than handing them over). SHA-256 (version 1) is
/// computed on a thread of its own so that the writer thread does not: small pieces are staged
/// into a few reused 512 KiB blocks and a full block goes to the hashing thread; arrays of 64 KiB or more are handed over as they are
/// (kept alive, not copied). A tensor of any size costs at most `blockCount` blocks and
/// `arrayBytesLimit` bytes of arrays; the writer waits when the hashing thread is that far
/// behind. The digest is that of the bytes in the order given, whatever the timing.
public final class BackgroundDigest {
    static let blockSize = 512 << 10
    static let blockCount = 4
    static let arrayBytesLimit = 8 << 20
    static let ownedMinimum = 64 << 10

    /// The hashing thread's side (SHA-256 only; nil when hashing directly).
    private let state: DigestState?
    private var staging: UnsafeMutableRawBufferPointer
    private var filled = 0

    /// Hashed on the caller's thread as the bytes arrive (no staging copy, no thread).
    private var direct: TensorHasher?
    private var directCRC: CRC32?

    public init(crc: Bool = false, algorithm: TensorHashAlgorithm = .current) {
        // XXH3 (with or without the CRC-32) runs at several GB/s: on the caller's thread it costs
        // about what the staging copy and the thread's wake-ups cost, so it runs there. SHA-256
        // (manifest version 1) is slow enough to keep its own thread.
        if algorithm == .xxh3 {
            direct = TensorHasher(algorithm)
            directCRC = crc ? CRC32() : nil
            staging = UnsafeMutableRawBufferPointer(start: nil, count: 0)
            state = nil
            return
        }
        let state = DigestState(crc: crc, algorithm: algorithm)
        self.state = state
        staging = state.takeFreeBlock()
        // Without a thread of its own (none can be started), the writer hashes as it goes.
        if !startThread(stackSize: 1 << 20, { state.run() }) { state.hashesInline() }
    }

    deinit {
        // An abandoned stream (a failed conversion): the thread ends on its own and frees the blocks.
        if filled >= 0, let state { state.close(last: staging, count: 0) }
    }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        precondition(filled >= 0, "update after finish")
        if direct != nil {
            direct!.update(bytes)
            directCRC?.update(bytes)
            return
        }
        var offset = 0
        while offset < bytes.count {
            let n = min(Self.blockSize - filled, bytes.count - offset)
            (staging.baseAddress! + filled).copyMemory(from: bytes.baseAddress! + offset, byteCount: n)
            filled += n
            offset += n
            if filled == Self.blockSize {
                state!.submit(staging, count: filled)
                staging = state!.takeFreeBlock()
                filled = 0
            }
        }
    }

    func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { update($0) } }

    /// Hashes `bytes` while `body` runs (typically the write of those same bytes): a large block
    /// hashed on the caller's thread is hashed on a side thread instead, at the same time as
    /// `body`, without copying it. The digest is the same as `update(bytes)` then `body()`.
    public func update(_ bytes: UnsafeRawBufferPointer, alongside body: () throws -> Void) rethrows {
        guard direct != nil, bytes.count >= Self.sideMinimum else {
            update(bytes)
            return try body()
        }
        if side == nil { side = SideThread() }
        try side!.run({
            direct!.update(bytes)
            directCRC?.update(bytes)
        }, alongside: body)
    }

    /// Blocks at least this large are hashed beside their write (a smaller one costs less than
    /// the hand-over).
    static let sideMinimum = 1 << 20
    private var side: SideThread?

    /// Hashes `bytes` without copying them when they are large (the array is kept until hashed).
    func update(owned bytes: [UInt8]) {
        guard bytes.count >= Self.ownedMinimum && direct == nil else { return update(bytes) }
        precondition(filled >= 0, "update after finish")
        if filled > 0 {
            state!.submit(staging, count: filled)
            staging = state!.takeFreeBlock()
            filled = 0
        }
        state!.submit(bytes)
    }

    /// Waits for the hashing thread; the checksum as hex and the CRC-32 (0 unless asked).
    public func finish() -> (digest: String, crc: UInt32) {
        precondition(filled >= 0, "finish twice")
        if let direct {
            filled = -1
            return (direct.finish(), directCRC?.value ?? 0)
        }
        state!.close(last: staging, count: filled)
        filled = -1
        return state!.result()
    }
}

/// What the hashing thread and the writer share: full blocks in order, free blocks for reuse.
/// `@unchecked Sendable`: every mutable property is read and written with `cond` locked.
private final class DigestState: @unchecked Sendable {
    private let cond = ThreadCondition()
    private enum Piece {
        case block(UnsafeMutableRawBufferPointer, Int)
        case array([UInt8])
    }
    private var full: [Piece] = []
    private var arrayBytes = 0
    private var free: [UnsafeMutableRawBufferPointer] = []
    private var allocated = 0
    private var closed = false
    private var finished = false
    private var hasher: TensorHasher
    private var crc = CRC32()
    private let withCRC: Bool
    private var inline = false

    init(crc: Bool, algorithm: TensorHashAlgorithm) {
        withCRC = crc
        hasher = TensorHasher(algorithm)
    }

    /// No hashing thread: every piece is hashed when it is handed over, on the writer's thread.
    func hashesInline() { inline = true }

    deinit {
        for b in free { b.deallocate() }
    }

    func takeFreeBlock() -> UnsafeMutableRawBufferPointer {
        cond.lock()
        defer { cond.unlock() }
        while free.isEmpty && allocated >= BackgroundDigest.blockCount { cond.wait() }
        if let b = free.popLast() { return b }
        allocated += 1
        return UnsafeMutableRawBufferPointer.allocate(byteCount: BackgroundDigest.blockSize, alignment: 64)
    }

    func submit(_ block: UnsafeMutableRawBufferPointer, count: Int) {
        cond.lock()
        full.append(.block(block, count))
        cond.broadcast()
        cond.unlock()
        if inline { run() }
    }

    /// Queues an array to hash where it lies, waiting while too many bytes of arrays are queued.
    func submit(_ array: [UInt8]) {
        cond.lock()
        while arrayBytes > 0 && arrayBytes + array.count > BackgroundDigest.arrayBytesLimit { cond.wait() }
        arrayBytes += array.count
        full.append(.array(array))
        cond.broadcast()
        cond.unlock()
        if inline { run() }
    }

    /// Hands over the last block; the thread ends once it has hashed everything.
    func close(last block: UnsafeMutableRawBufferPointer, count: Int) {
        cond.lock()
        full.append(.block(block, count))
        closed = true
        cond.broadcast()
        cond.unlock()
        if inline { run() }
    }

    func result() -> (digest: String, crc: UInt32) {
        cond.lock()
        defer { cond.unlock() }
        while !finished { cond.wait() }
        return (hasher.finish(), withCRC ? crc.value : 0)
    }

    /// The hashing thread's loop (inline: hashes what is queued and returns).
    func run() {
        while true {
            cond.lock()
            while full.isEmpty && !closed && !inline { cond.wait() }
            if full.isEmpty && inline && !closed {
                cond.unlock()
                return
            }
            if full.isEmpty {
                finished = true
                cond.broadcast()
                cond.unlock()
                return
            }
            let piece = full.removeFirst()
            cond.unlock()
            switch piece {
            case .block(let block, let count):
                let bytes = UnsafeRawBufferPointer(rebasing: block[0..<count])
                hasher.update(bytes)
                if withCRC { crc.update(bytes) }
                cond.lock()
                free.append(block)
            case .array(let array):
                array.withUnsafeBytes { bytes in
                    hasher.update(bytes)
                    if withCRC { crc.update(bytes) }
                }
                cond.lock()
                arrayBytes -= array.count
            }
            cond.broadcast()
            cond.unlock()
        }
    }
}
