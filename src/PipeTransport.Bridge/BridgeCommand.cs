using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;

namespace PipeTransport.Bridge;

/// <summary>The System.CommandLine definition of <c>pipebridge [options] ADDRESS1 ADDRESS2</c>.</summary>
internal sealed class BridgeCommand
{
    private readonly Option<bool> _unidirectional = new("-u", "--unidirectional")
    {
        Description = "Copy only from ADDRESS1 to ADDRESS2",
    };

    private readonly Option<int> _blockSize = new("-b", "--block-size")
    {
        Description = "Block size: bytes per read/write or splice call (65536, 64k, 1m) [default: 256k for copy, 1m for splice]",
        HelpName = "SIZE",
        CustomParser = result =>
        {
            string text = result.Tokens.Count == 1 ? result.Tokens[0].Value : "";
            if (ByteSize.TryParse(text, out int size)) return size;
            result.AddError($"bad block size '{text}' (expected e.g. 65536, 64k, 1m; at most 256m)");
            return 0;
        },
    };

    private readonly Option<bool> _fork = new("--fork")
    {
        Description = "Serve many connections at once on the listen ADDRESS1, each bridged to a fresh ADDRESS2",
    };

    private readonly Option<bool> _stats = new("--stats")
    {
        Description = "Show a progress line on stderr (bytes, rate, elapsed) and a summary at the end",
    };

    private readonly Option<bool> _reverse = new("-U")
    {
        Description = "Copy only from ADDRESS2 to ADDRESS1 (socat -U)",
    };

    private readonly Option<bool> _dumpText = new("-v")
    {
        Description = "Also write the transferred data to stderr as text, like socat -v: \"> \" blocks went ADDRESS1 to ADDRESS2, \"< \" blocks back (uses the copy engine)",
    };

    private readonly Option<bool> _dumpHex = new("-x")
    {
        Description = "Like -v, in hex (socat -x); with -v, both side by side",
    };

    private readonly Option<bool> _debug = new("-d")
    {
        Description = "More messages on stderr, like socat (repeat it): -d warnings, -d -d notices (listening address, connections with their peer and bytes, child exit statuses), -d -d -d details",
    };

    private readonly Option<TimeSpan?> _idleTimeout = new("-T")
    {
        Description = "End a session after SECONDS without a byte either way, like socat -T",
        HelpName = "SECONDS",
        CustomParser = result => ParseSeconds(result, allowZero: false),
    };

    private readonly Option<TimeSpan?> _halfCloseTimeout = new("-t")
    {
        Description = "Once one direction has ended, give the other SECONDS to end, then end the session (socat -t; "
            + "by default pipebridge waits for the other direction's own EOF, where socat waits 0.5 s)",
        HelpName = "SECONDS",
        CustomParser = result => ParseSeconds(result, allowZero: true),
    };

    private readonly Option<Engine> _engine = new("--engine")
    {
        Description = "auto: splice between pipes and sockets (sendfile from a regular file), copy otherwise; splice: kernel-side only; copy: through FdConnection pipes",
        DefaultValueFactory = _ => Engine.Auto,
        HelpName = "auto|splice|copy",
        CustomParser = result =>
        {
            string text = result.Tokens.Count == 1 ? result.Tokens[0].Value : "";
            switch (text.ToLowerInvariant())
            {
                case "auto": return Engine.Auto;
                case "splice": return Engine.Splice;
                case "copy": return Engine.Copy;
                default:
                    result.AddError($"bad engine '{text}' (expected auto, splice or copy)");
                    return Engine.Auto;
            }
        },
    };

    private readonly Option<string?> _handOff = new("--handoff")
    {
        Description = "Zero-downtime upgrade of the listen ADDRESS1: take its socket over from the pipebridge serving PATH "
            + "(it then stops accepting, lets its sessions end and exits 0), and serve PATH for the next one",
        HelpName = "PATH",
    };

    private readonly Argument<string> _first = new("ADDRESS1") { Description = "First address (see Addresses below)" };
    private readonly Argument<string> _second = new("ADDRESS2") { Description = "Second address" };

    /// <summary>The command: a <see cref="RootCommand"/> (with --help, --version and directives) or a plain command without them.</summary>
    public Command Root { get; }

    /// <param name="withBuiltIns">
    /// Build the <see cref="RootCommand"/>, whose --help and --version look up their localized descriptions
    /// when made: a large share of a bridge's start-up. <see cref="MayAskForBuiltIn"/> says when it is needed.
    /// </param>
    public BridgeCommand(bool withBuiltIns = true)
    {
        Root = withBuiltIns ? new RootCommand(HelpText.Description) : new Command(Program.Name, HelpText.Description);
        foreach (Option option in (Option[])[_unidirectional, _reverse, _blockSize, _fork, _stats, _dumpText, _dumpHex, _debug, _idleTimeout, _halfCloseTimeout, _engine, _handOff])
            Root.Options.Add(option);
        Root.Arguments.Add(_first);
        Root.Arguments.Add(_second);
        foreach (Option option in Root.Options)
        {
            if (option is HelpOption help && help.Action is HelpAction builtIn)
                help.Action = new GrammarHelpAction(builtIn);
            if (option is VersionOption version)
                version.Aliases.Add("-V");
        }
    }

    /// <summary>
    /// Whether <paramref name="args"/> may ask for --help, --version or a directive, alone or bundled
    /// (-uh), or name a response file (@FILE) that could: only then is the <see cref="RootCommand"/> built.
    /// </summary>
    public static bool MayAskForBuiltIn(string[] args) =>
        args.Any(a => a is "--help" or "--version" or "/h" or "/?"
            || (a.Length > 1 && a[0] == '-' && a[1] != '-' && a.AsSpan(1).IndexOfAny("h?V") >= 0)
            || a.StartsWith('[') || a.StartsWith('@'));

    /// <summary>True when the parse selected --help or --version rather than a bridge.</summary>
    public static bool IsBuiltInAction(ParseResult parseResult) =>
        parseResult.Action is GrammarHelpAction
        || parseResult.Tokens.Any(t => t.Type == System.CommandLine.Parsing.TokenType.Option && t.Value is "--version" or "-V");

    /// <summary>Turns a successful parse into options; address and combination errors throw <see cref="UsageException"/>.</summary>
    public BridgeOptions Bind(ParseResult parseResult)
    {
        Address first = AddressParser.Parse(parseResult.GetRequiredValue(_first));
        Address second = AddressParser.Parse(parseResult.GetRequiredValue(_second));
        bool fork = parseResult.GetValue(_fork) || first.Options.Fork;
        if (second.Options.Fork)
            throw new UsageException($"'{second}': fork applies to ADDRESS1, the listen address that serves many connections");
        if (fork && !first.IsListener)
            throw new UsageException("--fork needs a listen address (tcp-listen:, unix-listen:, accept-fd:) as ADDRESS1");
        if (second.IsListener && (first.IsListener || fork))
            throw new UsageException("ADDRESS2 cannot be a listen address together with --fork or a listening ADDRESS1");
        string? handOff = parseResult.GetValue(_handOff);
        if (handOff is not null && first is not (TcpListenAddress or UnixListenAddress))
            throw new UsageException("--handoff needs a listen address (tcp-listen:, unix-listen:) as ADDRESS1");
        if (handOff is not null && (handOff.Length == 0 || handOff.Contains('\0', StringComparison.Ordinal)))
            throw new UsageException($"--handoff: bad path '{handOff}'");
        if (handOff is not null && second.IsListener)
            throw new UsageException("ADDRESS2 cannot be a listen address together with --handoff");
        bool unidirectional = parseResult.GetValue(_unidirectional), reverse = parseResult.GetValue(_reverse);
        if (unidirectional && reverse)
            throw new UsageException("-u and -U are opposite directions: give one");
        if (!unidirectional && !reverse && (first is FifoAddress { EchoWhenBoth: false } || second is FifoAddress { EchoWhenBoth: false }))
        {
            Address fifo = first is FifoAddress { EchoWhenBoth: false } ? first : second;
            throw new UsageException($"'{fifo}' carries one direction only: add -u, or give both directions as fifo:IN!!fifo:OUT");
        }
        bool forward = !reverse && first.CanRead && second.CanWrite;
        bool backward = !unidirectional && second.CanRead && first.CanWrite;
        if (forward && backward && first is StdioAddress firstStdio && second is StdioAddress secondStdio)
        {
            // Both are fds 0 and 1: as in socat, stdin goes to stdout once (each fd is adopted once).
            first = firstStdio with { Writes = false };
            second = secondStdio with { Reads = false };
            backward = false;
        }
        bool dumpText = parseResult.GetValue(_dumpText), dumpHex = parseResult.GetValue(_dumpHex);
        Engine engine = parseResult.GetValue(_engine);
        if ((dumpText || dumpHex) && engine == Engine.Splice)
            throw new UsageException($"{(dumpText ? "-v" : "-x")} shows the data, which --engine splice never sees: use --engine copy or auto");
        if (!forward && !backward)
            throw new UsageException($"nothing to copy between '{first}' and '{second}': no direction has an address to read and one to write");
        Role firstRole = (forward ? Role.Read : 0) | (backward ? Role.Write : 0), secondRole = (forward ? Role.Write : 0) | (backward ? Role.Read : 0);
        int shared = FdsOf(first, firstRole).Intersect(FdsOf(second, secondRole)).DefaultIfEmpty(-1).First();
        if (shared >= 0)
            throw new UsageException($"'{first}' and '{second}' both use fd {shared}: each fd can be one address only");
        return new BridgeOptions(
            first,
            second,
            forward,
            backward,
            parseResult.GetValue(_blockSize),
            fork,
            parseResult.GetValue(_stats),
            dumpText,
            dumpHex,
            parseResult.Tokens.Count(t => t.Type == System.CommandLine.Parsing.TokenType.Option && t.Value == "-d"),
            engine,
            parseResult.GetValue(_idleTimeout),
            parseResult.GetValue(_halfCloseTimeout),
            handOff is null ? null : Path.GetFullPath(handOff));
    }

    /// <summary>Seconds as socat takes them (0.5, 5, 1e-3), at most a day.</summary>
    private static TimeSpan? ParseSeconds(System.CommandLine.Parsing.ArgumentResult result, bool allowZero)
    {
        string text = result.Tokens.Count == 1 ? result.Tokens[0].Value : "";
        if (double.TryParse(text, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double seconds)
            && (seconds > 0 || (allowZero && seconds == 0)) && seconds <= MaxTimeoutSeconds)
            return TimeSpan.FromSeconds(seconds);
        result.AddError($"bad timeout '{text}' for {((System.CommandLine.Parsing.OptionResult)result.Parent!).Option.Name} (expected seconds, e.g. 0.5 or 30{(allowZero ? "" : ", more than 0")})");
        return null;
    }

    /// <summary>The longest -T or -t accepted: a day.</summary>
    private const double MaxTimeoutSeconds = 24 * 60 * 60;

    /// <summary>The inherited fds an address takes over for <paramref name="role"/>.</summary>
    private static IEnumerable<int> FdsOf(Address address, Role role) => address switch
    {
        StdioAddress => (role.HasFlag(Role.Read) ? [0] : Array.Empty<int>()).Concat(role.HasFlag(Role.Write) ? [1] : []),
        FdAddress fd when role != 0 => [fd.Fd],
        AcceptFdAddress listener => [listener.Fd],
        SplitAddress split => FdsOf(split.Read, role & Role.Read).Concat(FdsOf(split.Write, role & Role.Write)),
        _ => [],
    };

    /// <summary>The generated help followed by the address grammar and examples.</summary>
    private sealed class GrammarHelpAction(HelpAction builtIn) : SynchronousCommandLineAction
    {
        public override int Invoke(ParseResult parseResult)
        {
            int result = builtIn.Invoke(parseResult);
            parseResult.InvocationConfiguration.Output.WriteLine(HelpText.Grammar);
            return result;
        }
    }
}
