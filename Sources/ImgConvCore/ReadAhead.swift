import CSystem
import FoundationEssentials
import Glibc
import Synchronization

/// Reads ahead of the decoders when the inputs are not in the page cache (a first run over files
/// on disk): one decoder thread reading one file at a time keeps a single request in flight, so a
/// cold run waits on the disk's latency, file after file. Once a file is found cold, every call
/// asks the kernel to start reading the next `depth` files (`POSIX_FADV_WILLNEED`, which does not
/// wait), so many requests are in flight and the decoders find their files read.
///
/// On warm files it costs one check every `probeEvery` files (a one-byte `RWF_NOWAIT` read), and
/// nothing else. The hints change only timing: what is read, and in which order it is used, does
/// not depend on them.
public final class ReadAhead: @unchecked Sendable {
    // @unchecked Sendable: `hinted` is only touched under `lock`, `cold` is atomic; `path` is a
    // pure function of the index that the caller shares with its own worker threads.
    public static let defaultDepth = 64
    static let probeEvery = 32

    private let count: Int
    private let depth: Int
    private let path: (Int) -> String
    private let lock = ThreadCondition()
    private var hinted = 0       // files [0, hinted) have been asked for
    /// Whether a cold file was found: read by every worker before every file without the lock
    /// (on warm files the lock, taken by all workers, cost more than the rest of this check).
    private let cold = Atomic<Bool>(false)

    /// - Parameters:
    ///   - count: the files, by index 0..<count, in the order the work takes them.
    ///   - path: the path of file `i`.
    public init(count: Int, depth: Int = ReadAhead.defaultDepth, path: @escaping (Int) -> String) {
        self.count = count
        self.depth = max(1, depth)
        self.path = path
    }

    /// Whether read-ahead has started (a cold file was found).
    public var started: Bool { cold.load(ordering: .relaxed) }

    /// Called by a worker before it reads file `i`.
    public func before(_ i: Int) {
        if !cold.load(ordering: .relaxed) {
            guard i % Self.probeEvery == 0, imc_file_cached(path(i)) == 0 else { return }
            cold.store(true, ordering: .relaxed)
        }
        // Claim the next stretch of files to ask for, then ask outside the lock.
        lock.lock()
        let from = max(hinted, i), to = min(count, i + depth)
        if to > from { hinted = to }
        lock.unlock()
        guard to > from else { return }
        for k in from..<to { _ = imc_will_need(path(k)) }
    }
}
