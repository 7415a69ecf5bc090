import Foundation

/// Jobs run on the global concurrent queue and their results handed back in submission order,
/// with at most `limit` jobs submitted but not yet handed back (so memory stays bounded). Used by
/// writers that compress blocks in parallel and must write them in order.
public final class OrderedWork<T>: @unchecked Sendable {
    private let limit: Int
    private let cond = NSCondition()
    private var results: [Int: Result<T, Error>] = [:]
    private var submitted = 0
    private var delivered = 0

    public init(limit: Int) { self.limit = max(1, limit) }

    /// Submits a job; first hands back finished results (waiting for the oldest if `limit` jobs
    /// are outstanding).
    public func submit(_ job: @escaping () throws -> T, deliver: (T) throws -> Void) throws {
        while outstanding >= limit { try next(wait: true, deliver: deliver) }
        cond.lock()
        let index = submitted
        submitted += 1
        cond.unlock()
        DispatchQueue.global().async { [self] in
            let r = Result { try job() }
            cond.lock()
            results[index] = r
            cond.broadcast()
            cond.unlock()
        }
        while try next(wait: false, deliver: deliver) {}
    }

    /// Hands back every outstanding result, in order.
    public func finish(deliver: (T) throws -> Void) throws {
        while outstanding > 0 { try next(wait: true, deliver: deliver) }
    }

    private var outstanding: Int {
        cond.lock()
        defer { cond.unlock() }
        return submitted - delivered
    }

    /// Delivers the next result if there is one (waiting for it with `wait`); false when none.
    @discardableResult
    private func next(wait: Bool, deliver: (T) throws -> Void) throws -> Bool {
        cond.lock()
        guard delivered < submitted else { cond.unlock(); return false }
        while results[delivered] == nil {
            if !wait { cond.unlock(); return false }
            cond.wait()
        }
        let r = results.removeValue(forKey: delivered)!
        delivered += 1
        cond.unlock()
        try deliver(try r.get())
        return true
    }
}
