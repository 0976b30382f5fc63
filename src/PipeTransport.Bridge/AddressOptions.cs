using System.Globalization;

namespace PipeTransport.Bridge;

/// <summary>
/// The socat address options pipebridge knows (<c>tcp-listen:8080,reuseaddr,fork</c>), parsed before
/// anything is opened or created. Which ones an address type takes is checked by <see cref="AddressParser"/>.
/// </summary>
internal sealed record AddressOptions
{
    public static readonly AddressOptions None = new();

    /// <summary>The options as given (their canonical names), for the check of what an address type takes.</summary>
    public IReadOnlyList<string> Given { get; init; } = [];

    /// <summary>SO_REUSEADDR on a TCP listener (pipebridge's default is on).</summary>
    public bool? ReuseAddress { get; init; }

    /// <summary>The host a TCP listener binds to.</summary>
    public string? Bind { get; init; }

    public int? Backlog { get; init; }

    /// <summary>Permissions of a file, FIFO or socket file pipebridge creates.</summary>
    public UnixFileMode? Mode { get; init; }

    /// <summary>Owner (name or uid) given to the file, FIFO or socket file.</summary>
    public string? User { get; init; }

    /// <summary>Group (name or gid) given to the file, FIFO or socket file.</summary>
    public string? Group { get; init; }

    /// <summary>Remove what is at the path before creating or opening it.</summary>
    public bool UnlinkEarly { get; init; }

    public bool Creat { get; init; }

    public bool Exclusive { get; init; }

    public bool Append { get; init; }

    public bool Truncate { get; init; }

    /// <summary>Serve many connections on a listen address (same as --fork).</summary>
    public bool Fork { get; init; }

    /// <summary>Option names and socat's aliases of them.</summary>
    private static readonly Dictionary<string, string> Names = new(StringComparer.OrdinalIgnoreCase)
    {
        ["reuseaddr"] = "reuseaddr", ["so-reuseaddr"] = "reuseaddr",
        ["bind"] = "bind",
        ["backlog"] = "backlog",
        ["mode"] = "mode", ["perm"] = "mode",
        ["user"] = "user", ["owner"] = "user", ["uid"] = "user",
        ["group"] = "group", ["gid"] = "group",
        ["unlink-early"] = "unlink-early",
        ["creat"] = "creat", ["create"] = "creat", ["o-creat"] = "creat",
        ["excl"] = "excl", ["o-excl"] = "excl",
        ["append"] = "append", ["o-append"] = "append",
        ["trunc"] = "trunc", ["o-trunc"] = "trunc",
        ["fork"] = "fork",
    };

    /// <summary>Parses the comma-separated options after an address (each still quoted as written).</summary>
    /// <exception cref="UsageException">An unknown option or a bad value, naming it and the address.</exception>
    public static AddressOptions Parse(string address, IReadOnlyList<string> options)
    {
        if (options.Count == 0) return None;
        var result = new AddressOptions();
        var given = new List<string>();
        foreach (string option in options)
        {
            int equals = option.IndexOf('=');
            string rawName = (equals < 0 ? option : option[..equals]).Trim();
            string? value = equals < 0 ? null : AddressLexer.Unquote(option[(equals + 1)..]);
            if (rawName.Length == 0)
                throw Bad(address, "empty option (two commas in a row?)");
            if (!Names.TryGetValue(rawName, out string? name))
                throw Bad(address, $"unknown option '{rawName}'");
            if (given.Contains(name))
                throw Bad(address, $"option '{name}' is given twice");
            given.Add(name);
            result = name switch
            {
                "reuseaddr" => result with { ReuseAddress = Flag(address, name, value) },
                "bind" => result with { Bind = Required(address, name, value) },
                "backlog" => result with { Backlog = ParseBacklog(address, value) },
                "mode" => result with { Mode = ParseMode(address, value) },
                "user" => result with { User = Required(address, name, value) },
                "group" => result with { Group = Required(address, name, value) },
                "unlink-early" => result with { UnlinkEarly = Flag(address, name, value) },
                "creat" => result with { Creat = Flag(address, name, value) },
                "excl" => result with { Exclusive = Flag(address, name, value) },
                "append" => result with { Append = Flag(address, name, value) },
                "trunc" => result with { Truncate = Flag(address, name, value) },
                "fork" => result with { Fork = Flag(address, name, value) },
                _ => throw new InvalidOperationException(name),
            };
        }
        return result with { Given = given };
    }

    /// <summary>Throws when an option was given that <paramref name="kind"/> addresses do not take.</summary>
    public void Allow(string address, string kind, params string[] allowed)
    {
        foreach (string name in Given)
        {
            if (Array.IndexOf(allowed, name) < 0)
                throw Bad(address, allowed.Length == 0
                    ? $"option '{name}' does not apply to {kind} (it takes no options)"
                    : $"option '{name}' does not apply to {kind} (it takes {string.Join(", ", allowed)})");
        }
    }

    /// <summary>A boolean option: bare, or =1/=0 (yes/no, true/false) as socat accepts.</summary>
    private static bool Flag(string address, string name, string? value) => value?.ToLowerInvariant() switch
    {
        null or "1" or "yes" or "true" => true,
        "0" or "no" or "false" => false,
        _ => throw Bad(address, $"option '{name}' takes no value, or 0 or 1 (got '{value}')"),
    };

    private static string Required(string address, string name, string? value) =>
        string.IsNullOrEmpty(value) ? throw Bad(address, $"option '{name}' needs a value ({name}=...)") : value;

    private static int ParseBacklog(string address, string? value) =>
        int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int backlog) && backlog >= 1
            ? backlog
            : throw Bad(address, $"option 'backlog' needs a positive number (got '{value}')");

    /// <summary>mode=OCTAL, as chmod takes it: 600, 0600, 0660.</summary>
    private static UnixFileMode ParseMode(string address, string? value)
    {
        string digits = value ?? "";
        if (digits.Length is > 0 and <= 5 && digits.All(c => c is >= '0' and <= '7'))
        {
            int mode = Convert.ToInt32(digits, 8);
            if (mode <= 0x1FF) return (UnixFileMode)mode;
        }
        throw Bad(address, $"option 'mode' needs octal permissions such as 600 or 0660 (got '{value}')");
    }

    private static UsageException Bad(string address, string why) => new($"bad address '{address}': {why}");
}
