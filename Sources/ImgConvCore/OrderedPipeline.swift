import Dispatch
import FoundationEssentials
import Glibc

/// Runs `work` for indices 0..<count on `jobs` threads and hands each result to `consume` on the
/// calling thread, strictly in index order. At most `window` results are in flight (taken by a
/// worker but not yet consumed), so memory is bounded by the window, not by `count`; the output
/// does not depend on the thread count.
///
/// Workers take `batch` consecutive indices at a time and publish their results together, so a
/// dataset of many tiny images costs one lock and at most one wake-up per batch, not per image.
/// A thread is woken only when it has something to do: the consumer when the result it waits for
/// arrives, a worker when the consumer has made room in the window.
///
/// The first error thrown by `consume` (or by `work`, when reached in order) stops the pipeline:
/// workers finish their current batch and take no more, and the error is rethrown.
///
/// `@inlinable`, with its state: callers in other modules get it specialized for their `T`
/// (unspecialized, each result's copy and each slot's access asked the runtime for `T`'s
/// metadata and witnesses: 2% of a run of 20,000 small images).
@inlinable
public func runOrderedPipeline<T>(
    count: Int, jobs: Int, window: Int, batch: Int = 1,
    work: @escaping (Int) throws -> T,
    consume: (Int, Result<T, Error>) throws -> Void
) throws {
    guard count > 0 else { return }
    let jobs = max(1, jobs)
    if jobs == 1 {
        for i in 0..<count { try consume(i, Result { try work(i) }) }
        return
    }
    let batch = max(1, batch)
    let state = PipelineState<T>(count: count, window: max(window, jobs * batch * 2), batch: batch)
    let group = DispatchGroup()
    var started = 0
    for _ in 0..<jobs {
        group.enter()
        let ok = startThread(stackSize: 8 << 20) {
            lowerThreadPriority(by: workerNice)
            var results: [Result<T, Error>] = []
            results.reserveCapacity(batch)
            while let range = state.take() {
                for i in range { results.append(Result { try work(i) }) }
                state.put(range.lowerBound, &results)
            }
            group.leave()
        }
        guard ok else {
            // No room for another thread (its stack, under a memory limit): the ones started
            // do the work, or this thread alone when there are none.
            group.leave()
            break
        }
        started += 1
    }
    if started == 0 {
        for i in 0..<count { try consume(i, Result { try work(i) }) }
        return
    }
    defer {
        state.stop()
        group.wait()
    }
    // Results are moved, slot to `ready` to `consume`, never copied (a copy of a result retains
    // everything it holds, and its release frees it later).
    var ready: [Result<T, Error>?] = []
    var i = 0
    while i < count {
        state.takeReady(from: i, into: &ready)
        for k in ready.indices {
            try consume(i, ready[k].take()!)
            i += 1
        }
        state.consumed(upTo: i)
        ready.removeAll(keepingCapacity: true)
    }
}

/// How much lower the workers' priority is than the other threads' (a nice increment): the
/// consumer and the threads it feeds (hashing, writing) do serial work that bounds the whole
/// pipeline, while the workers are many and take whatever time is left. On a machine with fewer
/// cores than busy threads, equal shares would starve the serial part; this keeps it going.
@usableFromInline let workerNice: Int32 = 5

/// Lowers the calling thread's scheduling priority. On Linux nice values belong to threads, and
/// setpriority(PRIO_PROCESS, 0, ...) changes the calling thread's only (setpriority(2), NOTES).
@usableFromInline func lowerThreadPriority(by increment: Int32) {
    #if os(Linux)
    let which = __priority_which_t(PRIO_PROCESS.rawValue)
    errno = 0
    let current = getpriority(which, 0)
    if errno == 0 { _ = setpriority(which, 0, min(19, current + increment)) }
    #endif
}

/// The shared state of `runOrderedPipeline`: a ring of `window` result slots under one mutex, with
/// one condition for the consumer and one for the workers.
/// `@unchecked Sendable`: every mutable property is read and written with `mutex` held.
/// (Internal, `@usableFromInline` for `runOrderedPipeline`'s specializations.)
@usableFromInline final class PipelineState<T>: @unchecked Sendable {
    @usableFromInline let count: Int
    @usableFromInline let window: Int
    @usableFromInline let batch: Int
    @usableFromInline var slots: [Result<T, Error>?]
    @usableFromInline var next = 0              // next index to hand to a worker
    @usableFromInline var consumed = 0          // results the consumer is done with
    @usableFromInline var awaited = -1          // the index the consumer sleeps on, or -1
    @usableFromInline var idleWorkers = 0
    @usableFromInline var stopped = false
    @usableFromInline let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    @usableFromInline let workerCond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    @usableFromInline let consumerCond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    @usableFromInline init(count: Int, window: Int, batch: Int) {
        self.count = count
        self.window = window
        self.batch = batch
        slots = Array(repeating: nil, count: window)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(workerCond, nil)
        pthread_cond_init(consumerCond, nil)
    }

    deinit {
        pthread_cond_destroy(consumerCond)
        pthread_cond_destroy(workerCond)
        pthread_mutex_destroy(mutex)
        consumerCond.deallocate()
        workerCond.deallocate()
        mutex.deallocate()
    }

    /// The next batch of indices for a worker, waiting while the window is full; nil when done.
    @inlinable func take() -> Range<Int>? {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while !stopped && next < count && next + min(batch, count - next) - consumed > window {
            idleWorkers += 1
            pthread_cond_wait(workerCond, mutex)
            idleWorkers -= 1
        }
        if stopped || next >= count { return nil }
        let start = next
        next = min(count, next + batch)
        return start..<next
    }

    /// Publishes the results of the batch that starts at `start` (moved out of `results`, which
    /// it leaves empty).
    @inlinable func put(_ start: Int, _ results: inout [Result<T, Error>]) {
        let n = results.count
        pthread_mutex_lock(mutex)
        var k = n
        while let r = results.popLast() {
            k -= 1
            slots[(start + k) % window] = consume r
        }
        if awaited >= start && awaited < start + n { pthread_cond_signal(consumerCond) }
        pthread_mutex_unlock(mutex)
    }

    /// Moves the finished results from index `i` on, in order, into `ready` (at least one:
    /// waits for index `i`).
    @inlinable func takeReady(from i: Int, into ready: inout [Result<T, Error>?]) {
        pthread_mutex_lock(mutex)
        while slots[i % window] == nil {
            awaited = i
            pthread_cond_wait(consumerCond, mutex)
        }
        awaited = -1
        var k = i
        while k < next, slots[k % window] != nil {
            ready.append(slots[k % window].take())
            k += 1
        }
        pthread_mutex_unlock(mutex)
    }

    /// The consumer is done with every result before `i`: their slots are free for workers.
    @inlinable func consumed(upTo i: Int) {
        pthread_mutex_lock(mutex)
        consumed = i
        if idleWorkers > 0 { pthread_cond_broadcast(workerCond) }
        pthread_mutex_unlock(mutex)
    }

    @inlinable func stop() {
        pthread_mutex_lock(mutex)
        stopped = true
        pthread_cond_broadcast(workerCond)
        pthread_mutex_unlock(mutex)
    }
}

/// How many decoded images may be in flight, and how many a worker takes at a time: a window of
/// about 16 MiB of pixels (at least 4 images per worker, at most 1,024 images), in batches that
/// give each worker a few turns within the window, at most 64 images.
public func pipelineFlow(bytesPerImage: Int, jobs: Int) -> (window: Int, batch: Int) {
    let jobs = max(1, jobs)
    let window = min(1024, max(jobs * 4, (16 << 20) / max(1, bytesPerImage)))
    return (window, min(64, max(1, window / (jobs * 4))))
}
