import CXXH3
import Glibc

/// What is wrong with the `IMGCONV_*` settings of the environment, one line each: a value
/// `IMGCONV_DIRECT_IO` does not take (`auto` is used), an `IMGCONV_XXH3` build that is not one
/// or that this CPU does not run (the widest it runs is used). Empty when all is well.
public func environmentWarnings(_ value: (String) -> String? = { getenv($0).map { String(cString: $0) } }) -> [String] {
    var lines: [String] = []
    if let mode = value("IMGCONV_DIRECT_IO"), DirectIOMode(setting: mode) == nil {
        let modes = DirectIOMode.allCases.map(\.rawValue)
        lines.append("IMGCONV_DIRECT_IO='\(mode)' is not \(modes.dropLast().joined(separator: ", ")) or \(modes.last!): auto is used")
    }
    if let build = value("IMGCONV_XXH3"), imc_xxh3_named(build) == nil {
        let runs = runnableXXH3Builds().map { String(cString: $0.pointee.name) }
        lines.append("IMGCONV_XXH3='\(build)' is not an XXH3 build this CPU runs (\(runs.joined(separator: ", "))): "
                     + "\(String(cString: imc_xxh3_best().pointee.name)) is used")
    }
    return lines
}
