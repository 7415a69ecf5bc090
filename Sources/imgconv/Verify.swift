import ArgumentParser
import ImgConv
import ImgConvCore

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Re-read an output and check it against its manifest (and, with --against, its sources).")

    @Argument(help: "An .npz file or a folder of .npy files written by imgconv.")
    var path: String

    @Option(help: "Re-decode the dataset at this root and compare every pixel.")
    var against: String?

    @Option(help: "Decoding threads for --against.")
    var jobs: Int = ConversionOptions.defaultJobs

    func run() throws {
        try IMGConvCommand.run {
            let report = try Verifier(jobs: jobs).verify(path: path, against: against)
            for line in report.checks { Console.out("ok: " + line) }
            Console.out("imgconv: verified '\(path)': \(report.checks.count) checks passed")
        }
    }
}
