import FoundationEssentials
import Glibc

/// Jobs run on a few threads of its own and their results handed back in submission order,
/// with at most `limit` jobs submitted but not yet handed back (so memory stays bounded). Used by
/// writers that compress blocks in parallel and must write them in order.
///
/// The threads are started with `startThread` (at most `limit`, and no more than the processor
/// count), not taken from libdispatch's global queue: libdispatch aborts the process (SIGILL)
/// when it cannot open what its thread pool monitor reads (out of descriptors) and retries
/// forever when it cannot start a thread. When no thread can be started, jobs run on the
/// submitting thread; the results are the same.
/// `@unchecked Sendable`: its own counters are used by the one submitting thread only; what the
/// worker threads touch is in `OrderedWorkQueue`, under its condition lock.
public final class OrderedWork<T>: @unchecked Sendable {
    private let limit: Int
    private let maxThreads: Int
    private let shared: OrderedWorkQueue<T>
    private var threads = 0
    private var submitted = 0
    private var delivered = 0

    public init(limit: Int) {
        self.limit = max(1, limit)
        maxThreads = max(1, min(self.limit, ProcessInfo.processInfo.activeProcessorCount))
        shared = OrderedWorkQueue<T>()
    }

    deinit { shared.close() }

    /// Submits a job; first hands back finished results (waiting for the oldest if `limit` jobs
    /// are outstanding).
    public func submit(_ job: @escaping () throws -> T, deliver: (T) throws -> Void) throws {
        while submitted - delivered >= limit { try next(wait: true, deliver: deliver) }
        let index = submitted
        submitted += 1
        if threads < maxThreads {
            let shared = self.shared
            if startThread(stackSize: 1 << 20, { shared.workerLoop() }) { threads += 1 }
        }
        if threads == 0 {
            shared.finished(index, Result { try job() })
        } else {
            shared.enqueue(index, job)
        }
        while try next(wait: false, deliver: deliver) {}
    }

    /// Hands back every outstanding result, in order.
    public func finish(deliver: (T) throws -> Void) throws {
        while submitted - delivered > 0 { try next(wait: true, deliver: deliver) }
    }

    /// Delivers the next result if there is one (waiting for it with `wait`); false when none.
    @discardableResult
    private func next(wait: Bool, deliver: (T) throws -> Void) throws -> Bool {
        guard delivered < submitted, let r = shared.take(delivered, wait: wait) else { return false }
        delivered += 1
        try deliver(try r.get())
        return true
    }
}

/// What an `OrderedWork` and its threads share: jobs waiting for a thread, results waiting to be
/// handed back. The threads end when their `OrderedWork` is gone.
/// `@unchecked Sendable`: every mutable property is read and written with `cond` locked.
private final class OrderedWorkQueue<T>: @unchecked Sendable {
    private let cond = ThreadCondition()
    private var jobs: [(Int, () throws -> T)] = []
    private var results: [Int: Result<T, Error>] = [:]
    private var closed = false

    func enqueue(_ index: Int, _ job: @escaping () throws -> T) {
        cond.lock()
        jobs.append((index, job))
        cond.broadcast()
        cond.unlock()
    }

    func finished(_ index: Int, _ result: Result<T, Error>) {
        cond.lock()
        results[index] = result
        cond.broadcast()
        cond.unlock()
    }

    /// The result of job `index` (waiting for it with `wait`), removed.
    func take(_ index: Int, wait: Bool) -> Result<T, Error>? {
        cond.lock()
        defer { cond.unlock() }
        while results[index] == nil {
            if !wait { return nil }
            cond.wait()
        }
        return results.removeValue(forKey: index)
    }

    func close() {
        cond.lock()
        closed = true
        cond.broadcast()
        cond.unlock()
    }

    func workerLoop() {
        while true {
            cond.lock()
            while jobs.isEmpty && !closed { cond.wait() }
            if jobs.isEmpty {
                cond.unlock()
                return
            }
            let (index, job) = jobs.removeFirst()
            cond.unlock()
            finished(index, Result { try job() })
        }
    }
}
