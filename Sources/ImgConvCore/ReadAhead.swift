import CSystem
import FoundationEssentials
import Glibc
import Synchronization

/// Reads ahead of the decoders when the inputs are not in the page cache (a first run over files
/// on disk): one decoder thread reading one file at a time keeps a single request in flight, so a
/// cold run waits on the disk's latency, file after file. Once a file is found cold, every call
/// opens the next `depth` files and asks the kernel to start reading them (`POSIX_FADV_WILLNEED`,
/// which does not wait), so many requests are in flight and the decoders find their files read.
/// The files it opened are handed to the workers that reach them (`before(_:)`), so read-ahead
/// costs no second open: on files that are in the page cache after all (a cache that dropped a
/// few of them, which is what starts it), it costs one hint per file.
///
/// On warm files it costs one check every `probeEvery` files (a one-byte `RWF_NOWAIT` read), and
/// nothing else. The hints change only timing: what is read, and in which order it is used, does
/// not depend on them.
public final class ReadAhead: @unchecked Sendable {
    // @unchecked Sendable: `hinted`, `slotIndex` and `slotFile` are only touched under `lock`,
    // `cold` is atomic; `path` is a pure function of the index that the caller shares with its
    // own worker threads.
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
    /// The files opened ahead, file `k` in slot `k % slots`, until its worker takes it. A slot's
    /// index is the last file it was used for: the one whose opened file it holds, or one whose
    /// worker came by first (then the file opened for it later is closed at once).
    private var slotIndex: [Int]
    private var slotFile: [InputFile?]
    /// Whether the files opened ahead are kept for their workers: only with descriptors to spare
    /// (a soft limit of at least `keepingLimit`); under a lower limit, as `ulimit -n 64`, the 2 x
    /// `depth` files it may hold could leave a worker none, and each is closed once hinted.
    private let keepsFiles: Bool
    static let keepingLimit: rlim_t = 1024

    /// - Parameters:
    ///   - count: the files, by index 0..<count, in the order the work takes them.
    ///   - path: the path of file `i`.
    public init(count: Int, depth: Int = ReadAhead.defaultDepth, path: @escaping (Int) -> String) {
        self.count = count
        self.depth = max(1, depth)
        self.path = path
        slotIndex = Array(repeating: -1, count: 2 * self.depth)
        slotFile = Array(repeating: nil, count: 2 * self.depth)
        var limit = rlimit()
        keepsFiles = getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 && limit.rlim_cur >= Self.keepingLimit
    }

    /// Whether read-ahead has started (a cold file was found).
    public var started: Bool { cold.load(ordering: .relaxed) }

    /// Called by a worker before it reads file `i`; returns file `i` when the read-ahead opened
    /// it (the worker reads it through this one and does not open it again), otherwise nil.
    public func before(_ i: Int) -> InputFile? {
        if !cold.load(ordering: .relaxed) {
            guard i % Self.probeEvery == 0, imc_file_cached(path(i)) == 0 else { return nil }
            cold.store(true, ordering: .relaxed)
        }
        // Take file i if it was opened, and claim the next stretch of files to ask for.
        lock.lock()
        var mine = take(i)
        let from = max(hinted, i), to = min(count, i + depth)
        if to > from { hinted = to }
        lock.unlock()
        guard to > from else { return mine }
        // Open and hint outside the lock; a file that cannot be opened is left to its worker,
        // whose own open reports why.
        var opened: [(Int, InputFile)] = []
        opened.reserveCapacity(to - from)
        for k in from..<to {
            guard let file = try? InputFile(path(k)) else { continue }
            file.willNeed()
            if k == i { mine = file } else if keepsFiles { opened.append((k, file)) }
        }
        var closing: [InputFile] = []
        lock.lock()
        for (k, file) in opened { put(file, for: k, closing: &closing) }
        lock.unlock()
        return mine   // `closing` is released here, outside the lock
    }

    private func take(_ i: Int) -> InputFile? {
        let s = i % slotIndex.count
        guard slotIndex[s] <= i else { return nil }   // a later file's slot: i's was closed
        var file: InputFile?
        swap(&file, &slotFile[s])
        // An earlier file's, whose worker had passed before it was opened (rare): closed.
        if slotIndex[s] < i { file = nil }
        slotIndex[s] = i
        return file
    }

    private func put(_ file: InputFile, for k: Int, closing: inout [InputFile]) {
        let s = k % slotIndex.count
        guard slotIndex[s] < k else { closing.append(file); return }   // its worker has been
        if let old = slotFile[s] { closing.append(old) }                // a later one's slot now
        slotIndex[s] = k
        slotFile[s] = file
    }
}
