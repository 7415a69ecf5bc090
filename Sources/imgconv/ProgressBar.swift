import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The progress line on stderr while a conversion runs: images done / total, images/s, MB/s
/// written, ETA. Drawn only when stderr is a terminal (and not with --quiet), at most ten times a
/// second; `clear()` wipes it before any other line is printed, so errors and warnings stay clean.
/// It is written through `Console.emit` (a failed write is reported, never a trap).
final class ProgressBar: @unchecked Sendable {
    static let shared = ProgressBar()

    private let lock = NSLock()
    private var enabled = false
    private var visible = false
    private var start = Date()
    private var lastDraw = Date.distantPast

    func begin(enabled: Bool) {
        lock.lock()
        defer { lock.unlock() }
        self.enabled = enabled && isatty(2) != 0
        start = Date()
    }

    func update(done: Int, total: Int, bytes: Int) {
        lock.lock()
        defer { lock.unlock() }
        guard enabled else { return }
        let now = Date()
        guard done == total || now.timeIntervalSince(lastDraw) >= 0.1 else { return }
        lastDraw = now
        let elapsed = max(now.timeIntervalSince(start), 1e-6)
        let rate = Double(done) / elapsed
        let mbps = Double(bytes) / elapsed / 1e6
        let eta = rate > 0 ? Double(total - done) / rate : 0
        let width = 24
        let filled = total > 0 ? width * done / total : width
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        let line = String(format: "\r\u{1B}[K[%@] %d/%d images  %.0f img/s  %.1f MB/s  ETA %.0f s",
                          bar, done, total, rate, mbps, eta)
        Console.emit(2, line)
        visible = true
    }

    /// Removes the bar from the screen (before another line, and at the end).
    func clear() {
        lock.lock()
        defer { lock.unlock() }
        if visible {
            Console.emit(2, "\r\u{1B}[K")
            visible = false
        }
    }
}
