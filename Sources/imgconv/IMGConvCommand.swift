import ArgumentParser
import Foundation
import ImgConv
import ImgConvCore

@main
struct IMGConvCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "imgconv",
        abstract: "Convert labeled image folders (ROOT/<class>/<images>) into training tensors.",
        version: ToolInfo.version,
        subcommands: [ToNPZ.self, ToNPY.self, ToHDF5.self, ToIDX.self, Convert.self, Inspect.self, Export.self, Preview.self, Verify.self])

    /// Like ArgumentParser's `main()`, but a usage error is one line (`imgconv: usage: ...`) on
    /// stderr with exit 64, as every other error is one line; help and version print as usual.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            let code = exitCode(for: error)
            if code == .success || error is ExitCode { exit(withError: error) }
            let first = message(for: error).split(separator: "\n").first.map(String.init) ?? "invalid usage"
            let text = first.hasPrefix("Error: ") ? String(first.dropFirst(7)) : first
            if code.rawValue == 64 {
                Console.error("usage: \(text) (see 'imgconv --help')")
                Foundation.exit(64)
            }
            Console.error("internal error: \(text)")
            Foundation.exit(70)
        }
    }

    /// Runs a subcommand body: library errors become one line on stderr and a documented exit code.
    static func run(_ body: () throws -> Void) throws {
        TemporaryFiles.installSignalHandlers()
        do {
            try body()
        } catch let e as ImgConvError {
            Console.error(e.description)
            throw ExitCode(e.code.exitCode)
        }
    }
}

enum Console {
    static func error(_ line: String) {
        ProgressBar.shared.clear()
        FileHandle.standardError.write(Data(("imgconv: " + line + "\n").utf8))
    }
    static func warning(_ line: String) {
        ProgressBar.shared.clear()
        FileHandle.standardError.write(Data(("imgconv: warning: " + line + "\n").utf8))
    }
    static func out(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }
}
