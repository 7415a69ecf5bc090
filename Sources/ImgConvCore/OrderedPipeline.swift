import Foundation

/// Runs `work` for indices 0..<count on `jobs` threads and hands each result to `consume` on the
/// calling thread, strictly in index order. At most `window` results are in flight (decoded but
/// not yet consumed), so memory is bounded by the window, not by `count`. The output therefore
/// does not depend on the thread count.
///
/// The first error thrown by `consume` (or by `work`, when reached in order) stops the pipeline:
/// workers finish their current item and take no more, and the error is rethrown.
public func runOrderedPipeline<T>(
    count: Int, jobs: Int, window: Int,
    work: @escaping (Int) throws -> T,
    consume: (Int, Result<T, Error>) throws -> Void
) throws {
    guard count > 0 else { return }
    let jobs = max(1, jobs)
    if jobs == 1 {
        for i in 0..<count { try consume(i, Result { try work(i) }) }
        return
    }
    let window = max(window, jobs)
    let state = PipelineState<T>(window: window)
    let group = DispatchGroup()
    for _ in 0..<jobs {
        let thread = Thread {
            while let i = state.take(count: count) {
                let r = Result { try work(i) }
                state.put(i, r)
            }
            group.leave()
        }
        thread.stackSize = 8 << 20
        group.enter()
        thread.start()
    }
    defer {
        state.stop()
        group.wait()
    }
    for i in 0..<count {
        let r = state.wait(for: i)
        try consume(i, r)
    }
}

private final class PipelineState<T>: @unchecked Sendable {
    private let cond = NSCondition()
    private var next = 0          // next index to hand to a worker
    private var consumed = 0      // results taken by the consumer
    private var stopped = false
    private var slots: [Int: Result<T, Error>] = [:]
    private let window: Int

    init(window: Int) { self.window = window }

    func take(count: Int) -> Int? {
        cond.lock()
        defer { cond.unlock() }
        while !stopped && next < count && next - consumed >= window { cond.wait() }
        if stopped || next >= count { return nil }
        let i = next
        next += 1
        return i
    }

    func put(_ i: Int, _ r: Result<T, Error>) {
        cond.lock()
        slots[i] = r
        cond.broadcast()
        cond.unlock()
    }

    func wait(for i: Int) -> Result<T, Error> {
        cond.lock()
        defer { cond.unlock() }
        while slots[i] == nil { cond.wait() }
        let r = slots.removeValue(forKey: i)!
        consumed = i + 1
        cond.broadcast()
        return r
    }

    func stop() {
        cond.lock()
        stopped = true
        cond.broadcast()
        cond.unlock()
    }
}
