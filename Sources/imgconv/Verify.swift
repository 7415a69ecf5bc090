import ArgumentParser
import ImgConv
import ImgConvCore

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Re-read an output and check it against its manifest (and, with --against, its sources).")

    @Argument(help: "An .npz or .h5 file, a folder of .npy files, or an IDX images file (or the folder holding the pair), written by imgconv.")
    var path: String

    @Option(help: "Re-decode the dataset at this root and compare every pixel.")
    var against: String?

    @OptionGroup var read: ReadOptionGroup

    @Option(help: "In a folder of several IDX pairs, the one whose files start with this prefix.")
    var prefix: String?

    @Option(help: "Decoding threads for --against (default: all cores).")
    var jobs: Int?

    func run() throws {
        try IMGConvCommand.run {
            let report = try Verifier(jobs: jobs ?? ConversionOptions.defaultJobs).verify(path: path, against: against, read: read.options(prefix: prefix))
            for line in report.checks { Console.out("ok: " + line) }
            Console.out("imgconv: verified '\(path)': \(counted(report.checks.count, "check")) passed")
        }
    }
}
