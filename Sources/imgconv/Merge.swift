import ArgumentParser
import FoundationEssentials
import Glibc
import ImgConv
import ImgConvCore

enum HDF5Merge: String, EnumerableFlag {
    case virtual, materialize
}

struct Merge: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Join the parts that 'to-* --plan --shard K/N' wrote into OUTDIR into one output, as a one-machine run writes it.")

    @Argument(help: "The folder of parts (with the plan.json the shards left there).")
    var folder: String

    @Argument(help: "The merged output (with --check: none).")
    var output: String?

    @Flag(help: "HDF5 parts: --virtual (default) maps the parts' images as virtual datasets, with paths relative to OUT (the parts must be in OUT's folder or below it, and stay there); --materialize copies them into OUT.")
    var hdf5: HDF5Merge = .virtual

    @Flag(help: "Only list the shards to run again ('missing: 3,7' on stdout, exit 66) and stale temporary files.")
    var check = false

    @Option(help: "Threads for verifying and compressing; outputs do not depend on it.")
    var jobs: Int = ConversionOptions.defaultJobs

    @Flag(name: .shortAndLong, help: "Print nothing but errors.")
    var quiet = false

    func validate() throws {
        if !check && output == nil { throw ValidationError("expected OUTDIR and OUT (or --check OUTDIR)") }
        if jobs < 1 { throw ValidationError("--jobs must be at least 1") }
    }

    func run() throws {
        try IMGConvCommand.run {
            var merger = ShardMerger()
            merger.jobs = jobs
            merger.threads = jobs
            merger.virtual = hdf5 == .virtual
            merger.warn = { Console.warning($0) }
            if check {
                let found = try merger.check(folder: folder)
                for name in found.stale { Console.out("stale: " + name) }
                for reason in found.reasons { Console.out("shard " + reason) }
                if !found.missing.isEmpty {
                    Console.out("missing: " + found.missing.map(String.init).joined(separator: ","))
                    throw ImgConvError(.notFound, path: folder, "\(found.missing.count) of \(found.plan.shards) shards missing")
                }
                if !quiet { Console.out("imgconv: '\(folder)': all \(found.plan.shards) parts of plan \(found.plan.hash.prefix(12)) verify") }
                return
            }
            let s = try merger.merge(folder: folder, output: output!)
            if !quiet { reportConversion(s, output: output!) }
        }
    }
}
