import ArgumentParser
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import ImgConv
import ImgConvCore

@main
struct IMGConvCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "imgconv",
        abstract: "Convert labeled image folders (ROOT/<class>/<images>) into training tensors.",
        version: ToolInfo.version,
        subcommands: [ToNPZ.self, ToNPY.self, ToHDF5.self, ToIDX.self, Plan.self, Merge.self, Convert.self, Inspect.self, Export.self, Preview.self, Verify.self, Check.self, Card.self])

    /// Like ArgumentParser's `main()`, but a usage error is one line (`imgconv: usage: ...`) on
    /// stderr with exit 64, as every other error is one line; help and version print as usual
    /// (through `Console`: a failed write is exit 74).
    static func main() {
        Console.occupyClosedStandardDescriptors()
        // libhdf5, libavif and libheif are opened at first use; under an address-space limit
        // they are opened first, so that the ceiling measured counts their mappings.
        if MemoryCeiling.addressSpaceLimit != nil {
            HDF5.preload()
            HEIFDecoder.preloadLibraries()
        }
        MemoryCeiling.prepare()
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            let code = exitCode(for: error)
            if error is ExitCode { exit(withError: error) }
            if code == .success {
                // Help and version, printed here so that a closed or full stdout is exit 74 too.
                Console.outDocument(fullMessage(for: error))
                Glibc.exit(Console.reportFailedWrite() ? ImgConvError.Code.io.exitCode : 0)
            }
            let first = message(for: error).split(separator: "\n").first.map(String.init) ?? "invalid usage"
            let text = first.hasPrefix("Error: ") ? String(first.dropFirst(7)) : first
            if code.rawValue == 64 {
                // An option the command does not have fails the parse (or leaves its value taken
                // for a path, failing it later): name the option rather than what went wrong
                // next. Looked for only here, because finding the options each command knows
                // renders its help, about 6 ms a run.
                if let unknown = UnknownOptions.check(Array(CommandLine.arguments.dropFirst())) {
                    Console.error("usage: \(unknown)")
                    Glibc.exit(Console.exitCode(64))
                }
                Console.error("usage: \(text) (see 'imgconv --help')")
                Glibc.exit(Console.exitCode(64))
            }
            Console.error("internal error: \(text)")
            Glibc.exit(Console.exitCode(70))
        }
    }

    /// Runs a subcommand body: library errors become one line on stderr and a documented exit code;
    /// a message that could not be written (stdout or stderr closed or full) makes it 74.
    static func run(_ body: () throws -> Void) throws {
        TemporaryFiles.installSignalHandlers()
        for line in environmentWarnings() { Console.warning(line) }
        // A signal held back while outputs were renamed into place ends the run here at the latest.
        defer { TemporaryFiles.endCommit() }
        do {
            // Under a memory limit (ulimit -v, a cgroup) that leaves less than any run needs,
            // stop here with the figures: an allocation that fails later would end the process.
            try MemoryCeiling.requireMinimum()
            try body()
        } catch let e as ImgConvError {
            Console.error(e.description)
            throw ExitCode(Console.exitCode(e.code.exitCode))
        }
        // The work is done (its output committed); only what was printed about it was lost.
        if Console.reportFailedWrite() { throw ExitCode(ImgConvError.Code.io.exitCode) }
    }
}

/// What the CLI prints: result lines on stdout, errors and warnings (one line each, `imgconv: `
/// first) on stderr. Written with plain `write(2)` loops, never through a call that traps: a
/// closed, full or broken stream is remembered (`firstFailure`, exit 74), later lines to it are
/// dropped, and the run goes on to its normal end. Control characters in a line (from file or
/// class names) are escaped, so a line stays one line and cannot drive the terminal.
enum Console {
    /// A failed write: the descriptor, the stream's name and the reason.
    struct Failure {
        var fd: Int32
        var stream: String
        var reason: String
    }

    private static let lock = ThreadCondition()
    nonisolated(unsafe) private static var failures: [Int32: Failure] = [:]

    /// The first stream a write failed on (stdout before stderr), if any.
    static var firstFailure: Failure? {
        lock.lock()
        defer { lock.unlock() }
        return failures[1] ?? failures[2]
    }

    /// Whether a write failed; if it was on stdout, says so in one line on stderr.
    static func reportFailedWrite() -> Bool {
        guard let failure = firstFailure else { return false }
        if failure.fd != 2 {
            error(ImgConvError(.io, path: failure.stream, "cannot write: \(failure.reason)").description)
        }
        return true
    }

    /// The exit code to use: `code`, or 74 when a message could not be written.
    static func exitCode(_ code: Int32) -> Int32 {
        firstFailure == nil ? code : ImgConvError.Code.io.exitCode
    }

    static func error(_ line: String) {
        ProgressBar.shared.clear()
        emit(2, "imgconv: " + escapingControlCharacters(line) + "\n")
    }

    static func warning(_ line: String) {
        ProgressBar.shared.clear()
        emit(2, "imgconv: warning: " + escapingControlCharacters(line) + "\n")
    }

    /// A line on stdout, every control character escaped (a class name holding a newline stays on
    /// its line).
    static func out(_ line: String) {
        emit(1, escapingControlCharacters(line) + "\n")
    }

    /// A document of several lines on stdout (`inspect --json`, help): its raw newlines are
    /// layout and stay; every other control character is escaped (a JSON string holds none raw,
    /// and DEL and C1 are escaped the JSON way by `escapingControlCharacters`).
    static func outDocument(_ document: String) {
        emit(1, escapingControlCharacters(document, keepingNewlines: true) + "\n")
    }

    /// A report as JSON on stdout (`--json`): sorted keys, indented, slashes unescaped.
    static func outJSON<T: Encodable>(_ value: T) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        outDocument(String(decoding: try encoder.encode(value), as: UTF8.self))
    }

    /// Writes `text` to stdout (1) or stderr (2) unless a write there failed before; a failure
    /// is remembered.
    static func emit(_ fd: Int32, _ text: String) {
        lock.lock()
        defer { lock.unlock() }
        guard failures[fd] == nil else { return }
        if let code = writeAll(fd, Array(text.utf8)) {
            let stream = fd == 1 ? "standard output" : "standard error"
            let reason = code == EBADF ? "it is closed" : errnoText(code)
            failures[fd] = Failure(fd: fd, stream: stream, reason: reason)
        }
    }

    /// `write(2)` until every byte is written. - Returns: nil, or the `errno` of the failure.
    private static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Int32? {
        var done = 0
        return bytes.withUnsafeBytes { buf -> Int32? in
            while done < buf.count {
                let n = Glibc.write(fd, buf.baseAddress! + done, buf.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                if n == 0 { return EIO }
                done += n
            }
            return nil
        }
    }

    /// Puts `/dev/null`, opened read-only, on each of descriptors 0, 1 and 2 that is closed at
    /// start. Otherwise the first file the run opens would get that number, and a line meant for
    /// stdout or stderr would be written into it (an output being written). Writes to the
    /// placeholder fail (EBADF), as they would on the closed descriptor, and are reported so.
    static func occupyClosedStandardDescriptors() {
        for fd: Int32 in 0...2 where fcntl(fd, F_GETFD) == -1 && errno == EBADF {
            let placeholder = open("/dev/null", O_RDONLY)
            if placeholder >= 0 && placeholder != fd {
                _ = dup2(placeholder, fd)
                close(placeholder)
            }
        }
    }
}
