import ArgumentParser
import FoundationEssentials
import Glibc
import ImgConv
import ImgConvCore
import ImgConvFormats

struct Card: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "card",
        abstract: "Write a dataset card: one self-contained HTML file showing classes, thumbnails, tensors, balance, skips and check findings.",
        usage: "imgconv card FILE|ROOT -o card.html [<options>]",
        discussion: """
            FILE, a conversion output (.npz, .npy folder, .h5, IDX), is read from its manifest and tensors. \
            ROOT, a folder of class folders, is converted with the conversion options below into a temporary \
            .npz that is removed afterwards (a dry run: nothing is left beside the card). The page needs no \
            network: thumbnails are PNG data URIs, script and style are inline. Clicking a thumbnail shows its \
            tensor row, label and one-hot row, a magnified view with the stored values on hover, its source \
            path, SHA-256 and EXIF rotation. --no-check leaves out the check findings (a second read).
            """)

    @OptionGroup var common: ConversionOptionGroup

    @Option(name: .shortAndLong, help: "The HTML file to write.")
    var output: String

    @Option(help: "Thumbnails per class and split.")
    var samples: Int = 6

    @Option(help: "Thumbnail side in pixels at most (images are never enlarged).")
    var thumbnail: Int = 48

    @Flag(help: "Leave out the check findings.")
    var noCheck = false

    func validate() throws {
        try common.validatePaths(outputs: 0)
        if common.plan != nil || common.check { throw ValidationError("--plan and --check go with the to-* commands") }
        if samples < 1 { throw ValidationError("--samples must be at least 1") }
        if thumbnail < 1 { throw ValidationError("--thumbnail must be at least 1") }
    }

    func run() throws {
        try IMGConvCommand.run {
            var options = CardOptions()
            options.samples = samples
            options.thumbnail = thumbnail
            let conversion = try common.options(compress: false)
            var checker = Checker(options: conversion)
            checker.warn = { Console.warning($0) }
            let size: Int
            if common.list == nil, Check.isContainer(common.paths[0]) {
                size = try CardBuilder(options: options, checker: noCheck ? nil : checker).write(input: common.paths[0], to: output)
            } else {
                // The dry run: the real conversion into a temporary .npz, carded, then removed.
                let dir = FileManager.default.temporaryDirectory.appendingPathComponent("imgconv-card-\(getpid())-\(UInt64.random(in: 0...UInt64.max))").path
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
                defer { try? FileManager.default.removeItem(atPath: dir) }
                let npz = dir + "/dry-run.npz"
                var converter = Converter(options: conversion)
                report(&converter, common)
                _ = try converter.convert(source: common.source, writer: NPZWriter(path: npz), outputName: "dry-run.npz", formatName: "npz")
                ProgressBar.shared.clear()
                var builder = CardBuilder(options: options, checker: nil)
                builder.sourceName = common.list ?? common.paths[0]
                builder.report = noCheck ? nil : try checker.check(source: common.source)
                size = try builder.write(input: npz, to: output)
            }
            if !common.quiet { Console.out("imgconv: wrote '\(output)': \(size) bytes") }
        }
    }
}
