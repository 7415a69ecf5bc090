#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// The temporary output files of this process, so that SIGINT and SIGTERM can remove them
/// before the process exits (130 and 143). The handler only calls async-signal-safe functions on
/// C strings prepared in advance.
public enum TemporaryFiles {
    private static let capacity = 64
    private static let lock = NSLock()
    // Fixed slots of strdup'ed paths, read by the signal handler without locking.
    nonisolated(unsafe) private static var slots = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: capacity)
    nonisolated(unsafe) private static var installed = false

    static func register(_ path: String) {
        lock.lock()
        defer { lock.unlock() }
        if !installed {
            slots.initialize(repeating: nil, count: capacity)
            installed = true
        }
        for i in 0..<capacity where slots[i] == nil {
            slots[i] = strdup(path)
            return
        }
    }

    static func unregister(_ path: String) {
        lock.lock()
        defer { lock.unlock() }
        guard installed else { return }
        for i in 0..<capacity {
            if let p = slots[i], String(cString: p) == path {
                slots[i] = nil
                free(p)
            }
        }
    }

    /// Installs SIGINT/SIGTERM handlers that remove registered temporary files, print one line
    /// and exit with 128 + the signal number.
    public static func installSignalHandlers() {
        lock.lock()
        if !installed {
            slots.initialize(repeating: nil, count: capacity)
            installed = true
        }
        lock.unlock()
        for sig in [SIGINT, SIGTERM] {
            signal(sig) { signo in
                for i in 0..<TemporaryFiles.capacity {
                    if let p = TemporaryFiles.slots[i] { unlink(p) }
                }
                let msg: StaticString = "\nimgconv: interrupted: temporary output removed\n"
                _ = msg.withUTF8Buffer { Glibc.write(2, $0.baseAddress, $0.count) }
                _exit(128 + signo)
            }
        }
    }
}
