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
        subcommands: [ToNPZ.self, ToNPY.self, ToHDF5.self, ToIDX.self, Convert.self, Inspect.self, Export.self, Verify.self])

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
