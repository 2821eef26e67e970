import Foundation

/// Finds and reads theme files: a name looks for `NAME.toml` in the theme directories, anything
/// with a `/` or ending in `.toml` is a path.
public enum ThemeFiles {
    /// The bundled theme names, in the order `t` cycles through them.
    public static let builtInNames = ["default", "light", "high-contrast", "mono"]

    /// The directories searched for named themes: `Themes/` under the current directory, then
    /// `Themes/` above the executable (a build tree inside the repository).
    public static func searchDirectories(executablePath: String = CommandLine.arguments.first ?? "") -> [String] {
        var dirs = [FileManager.default.currentDirectoryPath + "/Themes"]
        var url = URL(fileURLWithPath: executablePath).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<4 {
            dirs.append(url.appendingPathComponent("Themes").path)
            url = url.deletingLastPathComponent()
        }
        return dirs
    }

    /// Loads `nameOrPath`. A missing file gives the compiled-in default and a warning, never an error.
    /// - Returns: the theme and warnings (unknown keys, bad values, file not found).
    public static func load(_ nameOrPath: String, directories: [String]) -> (theme: Theme, warnings: [String]) {
        let isPath = nameOrPath.contains("/") || nameOrPath.hasSuffix(".toml")
        let candidates = isPath ? [nameOrPath] : directories.map { "\($0)/\(nameOrPath).toml" }
        for path in candidates {
            if let text = try? String(contentsOfFile: path, encoding: .utf8) {
                let name = isPath ? URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent : nameOrPath
                let (theme, warnings) = Theme.parse(text, name: name)
                return (theme, warnings.map { "theme \(name): \($0)" })
            }
        }
        var fallback = Theme.fallback
        if nameOrPath != "default" { fallback.name = nameOrPath }
        return (fallback, nameOrPath == "default" ? [] : ["theme '\(nameOrPath)' not found; using the built-in default colors"])
    }
}
