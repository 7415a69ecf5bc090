import CSystem
import Glibc

/// Whether a tensor file of about `bytes` bytes is written with direct I/O (`DirectOutput`):
/// `IMGCONV_DIRECT_IO` = `auto` (the default, and any other value): when it will hold at least
/// an eighth of the machine's memory, where the page cache stops helping (the kernel spends as
/// much time reclaiming it as the job takes) and only evicts what else is cached; below that,
/// the page cache absorbs the disk's pauses, and the file is in memory when the run ends, for
/// whatever reads it next. `always`: every tensor file; `never`: none.
public func directIOWanted(forBytes bytes: Int) -> Bool {
    switch DirectIOMode(setting: DirectOutput.setting) ?? .auto {
    case .always: return true
    case .never: return false
    case .auto: return bytes >= MemoryCeiling.physical / 8
    }
}

/// The values `IMGCONV_DIRECT_IO` takes (unset: `auto`; anything else: nil, taken as `auto`).
public enum DirectIOMode: String, CaseIterable, Sendable {
    case auto, always, never

    public init?(setting: String?) {
        guard let mode = DirectIOMode(rawValue: setting ?? "auto") else { return nil }
        self = mode
    }
}

/// The same for `count` items of `bytesPerItem` bytes (a product too large for an Int is large).
public func directIOWanted(count: Int, bytesPerItem: Int) -> Bool {
    let (bytes, overflow) = count.multipliedReportingOverflow(by: bytesPerItem)
    return directIOWanted(forBytes: overflow ? Int.max : bytes)
}

/// The direct-I/O path of a large `AtomicOutputFile` (a tensor file): bytes are gathered in
/// aligned stages of `stageSize` bytes and each full stage is written with `O_DIRECT` by a thread
/// of its own while the next one fills. Writing through the page cache costs the kernel a copy
/// of every byte into it, then its pages' allocation, writeback and, once the output outgrows
/// memory, their reclaim: a 30 GB output on a 24 GiB machine took 55 s of system time (5.5 s
/// direct), jpeg256's 786 MB 0.42 s (0.19 s direct, but 0.1-0.2 s more user time for the copy
/// into the stages, which contends with the disk's reads of the stage before).
///
/// Only whole stages go direct, at offsets that are multiples of `stageSize`; the last, partial
/// stage, and every `patch` of bytes already written, go through the page cache (the file's
/// ordinary descriptor), so the file's bytes are exactly those written, whatever their sizes.
/// `flush` writes the partial stage through the page cache too and keeps it, to be written again
/// direct once full (the kernel writes back and drops cached pages before a direct write over
/// them). An output smaller than a stage never goes direct.
///
/// A file system that takes no direct I/O (`imc_open_direct` refuses it), or that refuses a
/// direct write (`EINVAL`: an alignment its device needs that 4096 bytes is not), gets the same
/// stages through the page cache.
final class DirectOutput {
    /// 1 MiB: as fast as larger stages on this VM's disk (direct writes of 1 MiB: 1.6 GB/s, of
    /// 4 MiB: 1.1-1.3 GB/s), and what a small output leaves in memory stays small.
    static let stageSize = 1 << 20
    static let alignment = 4096
    /// Tests: direct writes from a misaligned address, which the kernel refuses (`EINVAL`).
    nonisolated(unsafe) static var misalignForTesting = false
    /// `IMGCONV_DIRECT_IO`, read once.
    static let setting: String? = getenv("IMGCONV_DIRECT_IO").map { String(cString: $0) }

    private let fd: Int32          // the file's ordinary descriptor (not owned)
    private var stages: [UnsafeMutableRawPointer]
    private var current = 0
    /// Bytes in the current stage, and the file offset of its first byte.
    private(set) var filled = 0
    private(set) var stageOffset = 0
    private let queue: StageWriteQueue

    /// nil when `path`'s file system takes no direct I/O, or when there is no memory for the
    /// stages (under an address-space limit): the file is then written through the page cache.
    init?(path: String, fd: Int32) {
        var stages: [UnsafeMutableRawPointer] = []
        for _ in 0..<2 {
            var p: UnsafeMutableRawPointer?
            guard posix_memalign(&p, Self.alignment, Self.stageSize) == 0, let p else {
                stages.forEach { free($0) }
                return nil
            }
            stages.append(p)
        }
        let direct = path.withCString { imc_open_direct($0) }
        guard direct >= 0 else {
            stages.forEach { free($0) }
            return nil
        }
        self.fd = fd
        self.stages = stages
        queue = StageWriteQueue(direct: direct, buffered: fd)
    }

    deinit {
        _ = queue.close()
        for s in stages { free(s) }
    }

    /// Appends `bytes`; each stage that fills is handed to the writing thread.
    /// - Returns: 0, or the `errno` of a failed earlier stage write.
    func append(_ bytes: UnsafeRawBufferPointer) -> Int32 {
        var done = 0
        while done < bytes.count {
            let n = min(Self.stageSize - filled, bytes.count - done)
            (stages[current] + filled).copyMemory(from: bytes.baseAddress! + done, byteCount: n)
            filled += n
            done += n
            if filled == Self.stageSize {
                // The other stage's write is over before this one is handed over (one in flight),
                // and the other stage is then free to fill.
                let error = queue.submit(stages[current], count: filled, at: stageOffset)
                guard error == 0 else { return error }
                current = 1 - current
                stageOffset += filled
                filled = 0
            }
        }
        return 0
    }

    /// Overwrites `bytes` at `position` (all of them written before): in the current stage in
    /// memory, before it through the page cache once no stage write is in flight.
    /// - Returns: 0, or an `errno`.
    func patch(_ bytes: UnsafeRawBufferPointer, at position: Int) -> Int32 {
        let inStage = max(0, position + bytes.count - max(position, stageOffset))
        if inStage > 0 {
            let from = bytes.count - inStage
            (stages[current] + (position + from - stageOffset)).copyMemory(from: bytes.baseAddress! + from, byteCount: inStage)
        }
        guard inStage < bytes.count else { return 0 }
        let error = queue.waitIdle()
        guard error == 0 else { return error }
        return pwriteAll(fd, UnsafeRawBufferPointer(rebasing: bytes[..<(bytes.count - inStage)]), at: position)
    }

    /// Makes every byte appended so far part of the file: waits for the stage in flight and
    /// writes the partial stage through the page cache (it stays staged).
    /// - Returns: 0, or an `errno`.
    func flush() -> Int32 {
        let error = queue.waitIdle()
        guard error == 0, filled > 0 else { return error }
        return pwriteAll(fd, UnsafeRawBufferPointer(start: stages[current], count: filled), at: stageOffset)
    }

    /// Waits for the stage in flight and closes the direct descriptor. Nothing more can be written.
    /// - Returns: 0, or the `errno` of a failed stage write.
    func close() -> Int32 { queue.close() }
}

/// `pwrite` of all of `bytes` at `offset`, through `EINTR` and short writes: 0, or the `errno`.
func pwriteAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int) -> Int32 {
    var done = 0
    while done < bytes.count {
        let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
        if n < 0 {
            if errno == EINTR { continue }
            return errno
        }
        done += n
    }
    return 0
}

/// The thread that writes `DirectOutput`'s full stages, one at a time, while the caller fills the
/// next. Without a thread (none can be started) each stage is written on the caller's.
/// `@unchecked Sendable`: every mutable property is read and written with `cond` locked, but
/// `direct`, which only the writing side uses, one write at a time.
private final class StageWriteQueue: @unchecked Sendable {
    private let cond = ThreadCondition()
    private var direct: Int32
    private let buffered: Int32
    private var pending: (UnsafeMutableRawPointer, Int, Int)?
    private var busy = false
    private var error: Int32 = 0
    private var closed = false
    private var threaded = false

    init(direct: Int32, buffered: Int32) {
        self.direct = direct
        self.buffered = buffered
        threaded = startThread(stackSize: 256 << 10) { [self] in loop() }
    }

    /// Waits for the write in flight, then hands this one over.
    /// - Returns: 0, or the `errno` of an earlier write (this one is then not written).
    func submit(_ stage: UnsafeMutableRawPointer, count: Int, at offset: Int) -> Int32 {
        guard threaded else {
            if error == 0 { error = write(stage, count, offset) }
            return error
        }
        cond.lock()
        defer { cond.unlock() }
        while busy { cond.wait() }
        guard error == 0 else { return error }
        pending = (stage, count, offset)
        busy = true
        cond.broadcast()
        return 0
    }

    /// Waits until no write is in flight. - Returns: 0, or the `errno` of a failed write.
    func waitIdle() -> Int32 {
        guard threaded else { return error }
        cond.lock()
        defer { cond.unlock() }
        while busy { cond.wait() }
        return error
    }

    /// Waits for the write in flight, ends the thread and closes the direct descriptor.
    func close() -> Int32 {
        let result = waitIdle()
        cond.lock()
        let wasClosed = closed
        closed = true
        cond.broadcast()
        cond.unlock()
        if !wasClosed && direct >= 0 { Glibc.close(direct) }
        direct = -1
        return result
    }

    private func loop() {
        cond.lock()
        while true {
            while pending == nil && !closed { cond.wait() }
            guard let (stage, count, offset) = pending else { break }
            pending = nil
            cond.unlock()
            let result = write(stage, count, offset)
            cond.lock()
            error = result
            busy = false
            cond.broadcast()
        }
        cond.unlock()
    }

    /// One stage, direct; through the page cache from the first direct write refused as
    /// misaligned on.
    private func write(_ stage: UnsafeMutableRawPointer, _ count: Int, _ offset: Int) -> Int32 {
        let bytes = UnsafeRawBufferPointer(start: stage, count: count)
        if direct >= 0 {
            let result = DirectOutput.misalignForTesting
                ? pwriteAll(direct, UnsafeRawBufferPointer(start: stage + 1, count: count - 1), at: offset)
                : pwriteAll(direct, bytes, at: offset)
            guard result == EINVAL else { return result }
            Glibc.close(direct)
            direct = -1
        }
        return pwriteAll(buffered, bytes, at: offset)
    }
}
