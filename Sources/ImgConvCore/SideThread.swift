import FoundationEssentials
import Glibc

/// A thread of its own that runs one job while the caller does its own part of the work
/// (`run(_:alongside:)`): both halves run at the same time and the call returns when both are
/// done. For work that splits in two over the same bytes, such as hashing a block while it is
/// written, without copying the bytes or queueing them: the job may use memory that is valid
/// only during the call. The thread is started on first use; when none can be started, the
/// job runs on the caller's thread first. Used from one thread at a time.
public final class SideThread {
    private let state = SideThreadState()
    private var started = false
    private var unavailable = false

    public init() {}

    deinit { state.close() }

    public func run<R>(_ job: () -> Void, alongside body: () throws -> R) rethrows -> R {
        if !started && !unavailable {
            let state = self.state
            started = startThread(stackSize: 1 << 20) { state.loop() }
            unavailable = !started
        }
        guard started else {
            job()
            return try body()
        }
        return try withoutActuallyEscaping(job) { job in
            state.submit(job)
            // The job may use what the caller lends it: wait for it even when `body` throws.
            defer { state.wait() }
            return try body()
        }
    }
}

/// What the caller and the side thread share. `@unchecked Sendable`: every property is read and
/// written with `cond` locked.
private final class SideThreadState: @unchecked Sendable {
    private let cond = ThreadCondition()
    private var job: (() -> Void)?
    private var running = false
    private var closed = false

    func submit(_ job: @escaping () -> Void) {
        cond.lock()
        self.job = job
        running = true
        cond.broadcast()
        cond.unlock()
    }

    func wait() {
        cond.lock()
        while running { cond.wait() }
        cond.unlock()
    }

    func close() {
        cond.lock()
        closed = true
        cond.broadcast()
        cond.unlock()
    }

    func loop() {
        cond.lock()
        while true {
            while job == nil && !closed { cond.wait() }
            guard let job else { break }
            self.job = nil
            cond.unlock()
            job()
            cond.lock()
            running = false
            cond.broadcast()
        }
        cond.unlock()
    }
}
