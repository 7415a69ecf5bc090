#if canImport(Glibc)
import Glibc
#endif

/// Starts a detached thread running `body`.
/// - Returns: false when the system cannot start one (out of memory for its stack, too many
///   threads): callers then do the work on fewer threads (or on the calling one), never wait for
///   a thread that does not exist. (Foundation's `Thread.start` fails silently.)
public func startThread(stackSize: Int, _ body: @escaping () -> Void) -> Bool {
    var attr = pthread_attr_t()
    pthread_attr_init(&attr)
    defer { pthread_attr_destroy(&attr) }
    pthread_attr_setstacksize(&attr, stackSize)
    pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
    let box = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
    var thread = pthread_t()
    let rc = pthread_create(&thread, &attr, { arg in
        Unmanaged<ThreadBody>.fromOpaque(arg!).takeRetainedValue().body()
        return nil
    }, box)
    if rc != 0 {
        Unmanaged<ThreadBody>.fromOpaque(box).release()
        return false
    }
    return true
}

private final class ThreadBody {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}
