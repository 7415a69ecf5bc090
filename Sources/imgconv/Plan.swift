import ArgumentParser
import FoundationEssentials
import Glibc
import ImgConv
import ImgConvCore

extension ShardBalance: RawValueArgument {}

struct Plan: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Plan a conversion for N shards: class map, tensor plan, skips and each split's order, from every header.")

    @OptionGroup var common: ConversionOptionGroup

    @Option(help: "The number of shards (each takes a contiguous range of every split).")
    var shards: Int

    @Option(help: "Balance the shards by image count (images) or by pixel count from the headers (pixels).")
    var balance: ShardBalance = .images

    @Option(name: .shortAndLong, help: ArgumentHelp("The plan file to write.", valueName: "plan.json"))
    var output: String

    func validate() throws {
        try common.validatePaths(outputs: 0)
        if common.plan != nil { throw ValidationError("plan takes ROOT or --list, not --plan") }
        if common.check { throw ValidationError("--check goes with the to-* commands (run 'imgconv check' on the dataset)") }
        if shards < 1 || shards > 99_999 { throw ValidationError("--shards must be from 1 to 99999") }
    }

    func run() throws {
        try IMGConvCommand.run {
            try checkOutputFileTarget(output)
            var converter = Converter(options: try common.options(compress: false))
            converter.warn = { Console.warning($0) }
            let (plan, bytes) = try converter.makeShardPlanFile(source: common.source, shards: shards, balance: balance)
            try writeFileAtomically(output, bytes)
            if !common.quiet {
                let images = plan.splits.reduce(0) { $0 + $1.items.count }
                let splits = plan.splits.map { "\($0.name) \($0.items.count)" }.joined(separator: ", ")
                Console.out("imgconv: wrote '\(output)': \(images) images (\(splits)), \(plan.classes.count) classes, \(plan.skipped.count) skipped, \(shards) shards, plan \(plan.hash.prefix(12))")
            }
        }
    }
}
