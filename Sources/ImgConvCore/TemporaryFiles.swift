#if canImport(Glibc)
import Glibc
#endif
import FoundationEssentials
import CSystem

/// The temporary output files of this process, so that SIGINT, SIGTERM, SIGHUP and SIGPIPE can
/// remove them before the process exits (130, 143, 129, 141). The handler only calls
/// async-signal-safe functions on C strings prepared in advance. While outputs are renamed into
/// place (a commit section) a signal is held back until the last one is in place.
public enum TemporaryFiles {
    private static let capacity = 64
    private static let lock = ThreadCondition()
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

    /// Forgets a temporary file (renamed into place or removed). When it was the last one, a
    /// commit section (`beginCommit`) ends, and a signal that arrived during it takes effect now.
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
        if (0..<capacity).allSatisfy({ slots[$0] == nil }) { endCommit() }
    }

    /// Starts a commit section, before an output is renamed into place: from now until the last
    /// temporary file of the run is renamed (or removed), a signal is held back, so that an
    /// interrupted run leaves either the earlier outputs or all of the new ones (a new `.npz`
    /// never stands beside the earlier manifest).
    static func beginCommit() {
        imc_begin_commit_section()
    }

    /// Ends a commit section; a signal held back during it now ends the process (128 + signal).
    /// Every output has been renamed into place by then: nothing is removed.
    public static func endCommit() {
        let signo = imc_end_commit_section()
        guard signo != 0 else { return }
        let line = "imgconv: interrupted (\(signalName(signo))) while outputs were renamed into place: finished that first\n"
        _ = Array(line.utf8).withUnsafeBytes { Glibc.write(2, $0.baseAddress, $0.count) }
        _exit(128 + signo)
    }

    private static func signalName(_ signo: Int32) -> String {
        switch signo {
        case SIGINT: return "SIGINT"
        case SIGTERM: return "SIGTERM"
        case SIGHUP: return "SIGHUP"
        case SIGPIPE: return "SIGPIPE"
        default: return "signal \(signo)"
        }
    }

    /// The signals that end a run with clean-up: Ctrl-C, `kill`, a closed terminal, a reader
    /// that went away (a write to its pipe).
    public static let handledSignals: [Int32] = [SIGINT, SIGTERM, SIGHUP, SIGPIPE]

    /// Installs handlers for `handledSignals` that remove registered temporary files, print one
    /// line and exit with 128 + the signal number (130, 143, 129, 141). While one runs the others
    /// are blocked, so the clean-up is not cut short.
    public static func installSignalHandlers() {
        lock.lock()
        if !installed {
            slots.initialize(repeating: nil, count: capacity)
            installed = true
        }
        lock.unlock()
        for sig in handledSignals {
            _ = handledSignals.withUnsafeBufferPointer { blocked in
                imc_install_signal_handler(sig, { signo in TemporaryFiles.handle(signo) },
                                           blocked.baseAddress, Int32(blocked.count))
            }
        }
    }

    /// The signal handler: held back during a commit section (see `beginCommit`), else the
    /// clean-up.
    private static func handle(_ signo: Int32) {
        if imc_defer_signal(signo) != 0 { return }
        cleanUpAndExit(signo)
    }

    /// Removes the temporary files and exits: only async-signal-safe calls (unlink, write, _exit)
    /// on C strings prepared in advance.
    private static func cleanUpAndExit(_ signo: Int32) -> Never {
        var removed = false
        for i in 0..<capacity {
            if let p = slots[i] { _ = imc_remove_tree(p); removed = true }   // a file, or a temporary output folder
        }
        let msg = interruptedMessage(signo)
        _ = msg.withUTF8Buffer { Glibc.write(2, $0.baseAddress, $0.count) }
        // The line says what was removed only when something was (a read command writes nothing;
        // a finished run's outputs are in place).
        let end: StaticString = removed ? ": temporary output removed\n" : "\n"
        _ = end.withUTF8Buffer { Glibc.write(2, $0.baseAddress, $0.count) }
        _exit(128 + signo)
    }

    /// Ends the process for an error that cannot be returned (a library call that does not come
    /// back): the temporary files are removed, the error's line printed, and the process exits
    /// with the error's code.
    public static func abandon(_ error: ImgConvError) -> Never {
        lock.lock()
        for i in 0..<capacity {
            if let p = slots[i] { _ = imc_remove_tree(p) }
        }
        let line = "imgconv: \(error)\n"
        _ = line.utf8CString.withUnsafeBufferPointer { Glibc.write(2, $0.baseAddress, $0.count - 1) }
        _exit(error.code.exitCode)
    }

    /// The start of the line printed when `signo` ends a run (after a newline that ends a
    /// progress line).
    private static func interruptedMessage(_ signo: Int32) -> StaticString {
        switch signo {
        case SIGINT: return "\nimgconv: interrupted (SIGINT)"
        case SIGTERM: return "\nimgconv: interrupted (SIGTERM)"
        case SIGHUP: return "\nimgconv: interrupted (SIGHUP)"
        case SIGPIPE: return "\nimgconv: interrupted (SIGPIPE: output pipe closed)"
        default: return "\nimgconv: interrupted"
        }
    }
}
