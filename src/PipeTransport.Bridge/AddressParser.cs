using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace PipeTransport.Bridge;

/// <summary>Parses the socat-like address grammar (see <see cref="HelpText"/>), options included.</summary>
internal static class AddressParser
{
    /// <summary>Options of listening sockets.</summary>
    private static readonly string[] TcpListenOptions = ["fork", "reuseaddr", "bind", "backlog"];
    private static readonly string[] UnixListenOptions = ["fork", "backlog", "mode", "user", "group", "unlink-early"];
    private static readonly string[] FifoOptions = ["mode", "user", "group", "unlink-early"];
    private static readonly string[] FileOptions = ["creat", "excl", "append", "trunc", "mode", "user", "group", "unlink-early"];

    public static Address Parse(string text)
    {
        List<string> halves = AddressLexer.Split(text, "!!");
        if (halves.Count > 1)
        {
            if (halves.Count > 2)
                throw Bad(text, "only one '!!' is allowed");
            string readText = halves[0], writeText = halves[1];
            if (readText.Length == 0 || writeText.Length == 0)
                throw Bad(text, "'!!' needs an address on each side (READ!!WRITE)");
            Address read = ParseSingle(readText), write = ParseSingle(writeText);
            if (read.IsListener || write.IsListener)
                throw Bad(text, "listen addresses cannot be combined with '!!'");
            return new SplitAddress(text, read, write);
        }
        return ParseSingle(text);
    }

    private static Address ParseSingle(string text)
    {
        List<string> parts = AddressLexer.Split(text, ",");
        string head = parts[0];
        AddressOptions options = AddressOptions.Parse(text, parts[1..]);
        int colon = head.IndexOf(':');
        string keyword = (colon < 0 ? head : head[..colon]).ToLowerInvariant();
        string? rest = colon < 0 ? null : AddressLexer.Unquote(head[(colon + 1)..]);
        // socat's short forms: a number is an fd, a '/' before any ':' is a path for gopen.
        if (head.Length > 0 && char.IsAsciiDigit(head[0]) && colon < 0)
            (keyword, rest) = ("fd", head);
        else if (head.IndexOf('/') is >= 0 and var slash && (colon < 0 || slash < colon))
            (keyword, rest) = ("gopen", AddressLexer.Unquote(head));
        Address address;
        switch (keyword)
        {
            case "stdio":
            case "-":
            case "stdin":
            case "stdout":
                if (rest is not null) throw Bad(text, $"{keyword} takes no parameter");
                options.Allow(text, keyword);
                return new StdioAddress(text, Reads: keyword != "stdout", Writes: keyword != "stdin");
            case "fifo":
                options.Allow(text, "fifo addresses", FifoOptions);
                address = new FifoAddress(text, RequirePath(text, keyword, rest));
                break;
            case "pipe" when rest is null:
                options.Allow(text, "pipe (the anonymous echo pipe)");
                return new AnonymousPipeAddress(text);
            case "pipe":
                options.Allow(text, "pipe addresses", FifoOptions);
                address = new FifoAddress(text, RequirePath(text, keyword, rest), EchoWhenBoth: true);
                break;
            case "file":
            case "open":
            case "gopen":
            case "create":
                options.Allow(text, $"{keyword} addresses", FileOptions);
                address = new FileAddress(text, RequirePath(text, keyword, rest), keyword switch
                {
                    "open" => FileKind.Open,
                    "gopen" => FileKind.GOpen,
                    "create" => FileKind.Create,
                    _ => FileKind.File,
                });
                break;
            case "unix":
            case "unix-connect":
            case "unix-client":
                options.Allow(text, $"{keyword} addresses");
                address = new UnixConnectAddress(text, RequireSocketPath(text, keyword, rest));
                break;
            case "unix-listen":
                options.Allow(text, "unix-listen addresses", UnixListenOptions);
                address = new UnixListenAddress(text, RequireSocketPath(text, keyword, rest));
                break;
            case "exec":
            {
                // The words keep what quotes grouped: exec:sh -c 'exit 3' runs sh with two arguments.
                List<string> words = colon < 0 ? [] : AddressLexer.SplitWords(head[(colon + 1)..]);
                if (words.Count == 0) throw Bad(text, "expected exec:PROGRAM [ARGUMENTS]");
                options.Allow(text, "exec addresses");
                return new ExecAddress(text, words, Shell: false);
            }
            case "system":
                if (string.IsNullOrWhiteSpace(rest)) throw Bad(text, "expected system:SHELL-COMMAND");
                options.Allow(text, "system addresses");
                return new ExecAddress(text, [rest], Shell: true);
            case "accept-fd":
            {
                options.Allow(text, "accept-fd addresses", "fork");
                int listenFd = string.IsNullOrEmpty(rest) ? SystemdListenFd(text) : ParseFd(text, rest, keyword);
                ForgetSystemdSockets();
                return new AcceptFdAddress(text, listenFd) { Options = options };
            }
            case "fd":
                if (rest is null || !int.TryParse(rest, NumberStyles.None, CultureInfo.InvariantCulture, out int fd))
                    throw Bad(text, "expected fd:N with N a non-negative integer");
                options.Allow(text, "fd addresses");
                return new FdAddress(text, fd);
            case "tcp":
            case "tcp-connect":
            case "tcp4":
            case "tcp4-connect":
            case "tcp6":
            case "tcp6-connect":
            {
                if (rest is null) throw Bad(text, $"expected {keyword}:HOST:PORT");
                (string? host, int port) = SplitHostPort(text, rest);
                if (host is null) throw Bad(text, $"expected {keyword}:HOST:PORT (the host is missing)");
                if (port == 0) throw Bad(text, "cannot connect to port 0");
                options.Allow(text, "tcp (connect) addresses");
                AddressFamily? family = FamilyOf(keyword);
                CheckFamily(text, host, family);
                return new TcpConnectAddress(text, host, port, family);
            }
            case "tcp-listen":
            case "tcp4-listen":
            case "tcp6-listen":
            {
                if (rest is null) throw Bad(text, $"expected {keyword}:PORT or {keyword}:HOST:PORT");
                (string? host, int port) = SplitHostPort(text, rest);
                options.Allow(text, "tcp-listen addresses", TcpListenOptions);
                if (options.Bind is { } bind)
                {
                    if (host is not null) throw Bad(text, $"give the host once: {keyword}:HOST:PORT or {keyword}:PORT,bind=HOST");
                    host = BindHost(text, bind);
                }
                AddressFamily? family = FamilyOf(keyword);
                if (host is not null) CheckFamily(text, host, family);
                return new TcpListenAddress(text, host, port, family) { Options = options };
            }
            default:
                throw Bad(text, $"unknown address type '{keyword}' (expected {KnownTypes})");
        }
        CheckOwnership(text, options);
        return address with { Options = options };
    }

    private const string KnownTypes =
        "stdio, stdin, stdout, fd, fifo, pipe, file, open, gopen, create, unix-connect, unix-listen, tcp, tcp-listen, accept-fd, exec, system";

    /// <summary>The first socket <c>sd_listen_fds(3)</c> would return: fd 3, when LISTEN_PID is this process and LISTEN_FDS is 1 or more.</summary>
    private static int SystemdListenFd(string text)
    {
        string? pid = Environment.GetEnvironmentVariable("LISTEN_PID"), fds = Environment.GetEnvironmentVariable("LISTEN_FDS");
        if (pid is null || fds is null)
            throw Bad(text, "no fd given and no LISTEN_FDS/LISTEN_PID from systemd: write accept-fd:N");
        if (!int.TryParse(pid, NumberStyles.None, CultureInfo.InvariantCulture, out int listenPid) || listenPid != Environment.ProcessId)
            throw Bad(text, $"LISTEN_PID={pid} is not this process ({Environment.ProcessId}): the sockets were meant for another one");
        if (!int.TryParse(fds, NumberStyles.None, CultureInfo.InvariantCulture, out int count) || count < 1)
            throw Bad(text, $"LISTEN_FDS={fds}: no socket was passed");
        return SystemdFirstFd;
    }

    /// <summary>
    /// Sockets systemd passed to this process are taken now: the programs that exec: and system: start
    /// must not take them for theirs (sd_listen_fds' unset_environment).
    /// </summary>
    private static void ForgetSystemdSockets()
    {
        if (Environment.GetEnvironmentVariable("LISTEN_PID") != Environment.ProcessId.ToString(CultureInfo.InvariantCulture)) return;
        foreach (string name in new[] { "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES" })
            Environment.SetEnvironmentVariable(name, null);
    }

    /// <summary>SD_LISTEN_FDS_START: systemd passes its sockets from fd 3 on.</summary>
    private const int SystemdFirstFd = 3;

    private static int ParseFd(string text, string rest, string keyword) =>
        int.TryParse(rest, NumberStyles.None, CultureInfo.InvariantCulture, out int fd)
            ? fd
            : throw Bad(text, $"expected {keyword}:N with N a non-negative integer");

    /// <summary>tcp4… is IPv4 only, tcp6… IPv6 only; plain tcp takes either.</summary>
    private static AddressFamily? FamilyOf(string keyword) =>
        keyword.StartsWith("tcp4", StringComparison.Ordinal) ? AddressFamily.InterNetwork
        : keyword.StartsWith("tcp6", StringComparison.Ordinal) ? AddressFamily.InterNetworkV6
        : null;

    private static void CheckFamily(string text, string host, AddressFamily? family)
    {
        if (family is { } f && IPAddress.TryParse(host, out IPAddress? literal) && literal.AddressFamily != f)
            throw Bad(text, f == AddressFamily.InterNetwork ? $"'{host}' is not an IPv4 address" : $"'{host}' is not an IPv6 address");
    }

    /// <summary>bind=HOST of a listener: an IPv4 or IPv6 address (bracketed or not) or a name; the port is the address's.</summary>
    private static string BindHost(string text, string bind)
    {
        if (IPAddress.TryParse(bind, out _)) return bind;
        string host = bind.StartsWith('[') && bind.EndsWith(']') ? bind[1..^1] : bind;
        if (host.Length == 0 || (host.Contains(':') && !IPAddress.TryParse(host, out _)))
            throw Bad(text, $"bind={bind}: expected a host (the port is the address's)");
        return host;
    }

    /// <summary>user= and group= name someone who exists (checked now, so a typo creates nothing).</summary>
    private static void CheckOwnership(string text, AddressOptions options)
    {
        if (options.User is { } user && !uint.TryParse(user, NumberStyles.None, CultureInfo.InvariantCulture, out _)
            && PipeTransport.Interop.Sys.GetUserId(user, out _) != 1)
            throw Bad(text, $"no such user '{user}'");
        if (options.Group is { } group && !uint.TryParse(group, NumberStyles.None, CultureInfo.InvariantCulture, out _)
            && PipeTransport.Interop.Sys.GetGroupId(group, out _) != 1)
            throw Bad(text, $"no such group '{group}'");
    }

    private static string RequirePath(string text, string keyword, string? rest)
    {
        if (string.IsNullOrEmpty(rest)) throw Bad(text, $"expected {keyword}:PATH");
        if (rest.Contains('\0')) throw Bad(text, "the path contains a NUL byte");
        return rest;
    }

    private static string RequireSocketPath(string text, string keyword, string? rest)
    {
        string path = RequirePath(text, keyword, rest);
        // sun_path is 108 bytes including the terminating NUL.
        if (System.Text.Encoding.UTF8.GetByteCount(path) > 107)
            throw Bad(text, "a Unix socket path is at most 107 bytes");
        return path;
    }

    /// <summary>Splits <c>[HOST:]PORT</c>, accepting <c>[v6addr]:PORT</c>.</summary>
    private static (string? Host, int Port) SplitHostPort(string text, string rest)
    {
        string? host;
        string portText;
        if (rest.StartsWith('['))
        {
            int close = rest.IndexOf(']');
            if (close < 0 || close + 1 >= rest.Length || rest[close + 1] != ':')
                throw Bad(text, "expected [IPv6]:PORT");
            host = rest[1..close];
            portText = rest[(close + 2)..];
        }
        else
        {
            int last = rest.LastIndexOf(':');
            host = last < 0 ? null : rest[..last];
            portText = last < 0 ? rest : rest[(last + 1)..];
            if (host is not null && host.Contains(':'))
                throw Bad(text, "write IPv6 hosts in brackets: [::1]:PORT");
        }
        if (host is { Length: 0 }) throw Bad(text, "the host is empty");
        if (!int.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out int port) || port > 65535)
            throw Bad(text, $"bad port '{portText}' (expected 0-65535)");
        return (host, port);
    }

    private static UsageException Bad(string text, string why) => new($"bad address '{text}': {why}");
}
