import ArgumentParser
import ImgConv

extension LabelForm: ExpressibleByArgument {}

/// How every read command (convert, export, inspect, preview, verify) finds the pairs of its input.
struct ReadOptionGroup: ParsableArguments {
    @Option(help: "IDX input: the labels file, when its name does not follow MNIST's (images -> labels, idx3 -> idx1).")
    var labelsFile: String?

    @Option(help: ArgumentHelp("The images array, when it is named neither <split>Xs nor x_<split> (with --ys).", valueName: "name"))
    var xs: String?

    @Option(help: ArgumentHelp("The labels array that goes with --xs.", valueName: "name"))
    var ys: String?

    @Option(help: "4-D image layout: nhwc or nchw (default: nchw when the manifest says so, else nhwc).")
    var layout: String?

    func validate() throws {
        if (xs == nil) != (ys == nil) { throw ValidationError("--xs and --ys go together: name the images and the labels") }
        if let layout, layout != "nhwc", layout != "nchw" { throw ValidationError("--layout must be nhwc or nchw, not '\(layout)'") }
    }

    func options(prefix: String? = nil) -> DatasetReadOptions {
        var o = DatasetReadOptions()
        o.labelsFile = labelsFile
        o.prefix = prefix
        o.xs = xs
        o.ys = ys
        o.layout = layout
        return o
    }
}
