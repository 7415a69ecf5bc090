import FoundationEssentials
import ImgConvCore
#if canImport(Glibc)
import Glibc
#endif

/// How a conversion reports progress (`--progress`).
enum ProgressMode: String, CaseIterable {
    /// A bar on stderr when stderr is a terminal, nothing otherwise.
    case auto
    /// One JSON object a line on stderr, once a second and at the end, terminal or not (for
    /// scripts and notebooks).
    case json
    case none
}

/// The progress of a conversion on stderr: a bar (percent, files done / total, elapsed, images/s,
/// MB/s written, files left out so far, ETA) redrawn at most ten times a second, or JSON lines.
/// The ETA comes from a smoothed rate (an exponential average over half-second steps, shown once
/// a second of work and 1% of the files are behind), so a slow start does not promise minutes for
/// a two-second run. `clear()` wipes the bar before any other line is printed, so errors and
/// warnings stay clean. Written through `Console.emit` (a failed write is reported, never a trap).
/// `@unchecked Sendable`: every mutable property is read and written with `lock` held.
final class ProgressBar: @unchecked Sendable {
    static let shared = ProgressBar()

    private let lock = ThreadCondition()
    private var mode = ProgressMode.none
    private var visible = false
    private var start = Date()
    private var lastDraw = Date.distantPast
    private var lastSample = (time: Date(), done: 0)
    private var smoothedRate: Double?

    func begin(mode: ProgressMode) {
        lock.lock()
        defer { lock.unlock() }
        switch mode {
        case .auto: self.mode = isatty(2) != 0 ? .auto : .none
        case .json, .none: self.mode = mode
        }
        start = Date()
        lastDraw = .distantPast
        lastSample = (start, 0)
        smoothedRate = nil
    }

    func update(done: Int, total: Int, bytes: Int, skipped: Int) {
        lock.lock()
        defer { lock.unlock() }
        guard mode != .none else { return }
        let now = Date()
        let interval = mode == .json ? 1.0 : 0.1
        guard done == total || now.timeIntervalSince(lastDraw) >= interval else { return }
        lastDraw = now
        let elapsed = max(now.timeIntervalSince(start), 1e-6)
        let step = now.timeIntervalSince(lastSample.time)
        if step >= 0.5 {
            let rate = Double(done - lastSample.done) / step
            smoothedRate = smoothedRate.map { 0.3 * rate + 0.7 * $0 } ?? rate
            lastSample = (now, done)
        }
        let rate = Double(done) / elapsed
        let mbps = Double(bytes) / elapsed / 1e6
        let percent = total > 0 ? 100 * Double(done) / Double(total) : 100
        var eta: Double?
        if let smoothed = smoothedRate, smoothed > 0, elapsed >= 1, done * 100 >= total {
            eta = Double(total - done) / smoothed
        }
        if done == total { eta = 0 }
        if mode == .json {
            var line = cFormat("{\"done\": %ld, \"total\": %ld, \"percent\": %.1f, \"elapsed\": %.2f, \"imagesPerSecond\": %.1f, \"mbWritten\": %.2f, \"skipped\": %ld, \"eta\": ",
                              done, total, percent, elapsed, rate, Double(bytes) / 1e6, skipped)
            line += eta.map { cFormat("%.1f", $0) } ?? "null"
            Console.emit(2, line + "}\n")
            return
        }
        let width = 20
        let filled = total > 0 ? width * done / total : width
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        let left = skipped > 0 ? "  \(skipped) left out" : ""
        let etaText = eta.map { cFormat("ETA %.0f s", $0.rounded(.up)) } ?? "ETA --"
        let line = "\r\u{1B}[K[\(bar)] " + cFormat("%3.0f%%  %ld/%ld  %.0f s  %.0f img/s  %.1f MB/s", percent, done, total, elapsed, rate, mbps)
            + "\(left)  \(etaText)"
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
