using System.Globalization;

namespace PipeTransport.Bridge;

/// <summary>Parses the socat-like address grammar (see <see cref="HelpText"/>).</summary>
internal static class AddressParser
{
    public static Address Parse(string text)
    {
        int split = text.IndexOf("!!", StringComparison.Ordinal);
        if (split >= 0)
        {
            string readText = text[..split], writeText = text[(split + 2)..];
            if (readText.Length == 0 || writeText.Length == 0)
                throw Bad(text, "'!!' needs an address on each side (READ!!WRITE)");
            if (writeText.Contains("!!", StringComparison.Ordinal))
                throw Bad(text, "only one '!!' is allowed");
            Address read = ParseSingle(readText), write = ParseSingle(writeText);
            if (read.IsListener || write.IsListener)
                throw Bad(text, "listen addresses cannot be combined with '!!'");
            return new SplitAddress(text, read, write);
        }
        return ParseSingle(text);
    }

    private static Address ParseSingle(string text)
    {
        int colon = text.IndexOf(':');
        string keyword = (colon < 0 ? text : text[..colon]).ToLowerInvariant();
        string? rest = colon < 0 ? null : text[(colon + 1)..];
        switch (keyword)
        {
            case "stdio":
            case "-":
                if (rest is not null) throw Bad(text, "stdio takes no parameter");
                return new StdioAddress(text);
            case "fifo":
            case "pipe":
                return new FifoAddress(text, RequirePath(text, keyword, rest));
            case "file":
            case "open":
                return new FileAddress(text, RequirePath(text, keyword, rest));
            case "unix":
            case "unix-connect":
                return new UnixConnectAddress(text, RequireSocketPath(text, keyword, rest));
            case "unix-listen":
                return new UnixListenAddress(text, RequireSocketPath(text, keyword, rest));
            case "fd":
                if (rest is null || !int.TryParse(rest, NumberStyles.None, CultureInfo.InvariantCulture, out int fd))
                    throw Bad(text, "expected fd:N with N a non-negative integer");
                return new FdAddress(text, fd);
            case "tcp":
            case "tcp-connect":
            {
                if (rest is null) throw Bad(text, "expected tcp:HOST:PORT");
                (string? host, int port) = SplitHostPort(text, rest);
                if (host is null) throw Bad(text, "expected tcp:HOST:PORT (the host is missing)");
                if (port == 0) throw Bad(text, "cannot connect to port 0");
                return new TcpConnectAddress(text, host, port);
            }
            case "tcp-listen":
            {
                if (rest is null) throw Bad(text, "expected tcp-listen:PORT or tcp-listen:HOST:PORT");
                (string? host, int port) = SplitHostPort(text, rest);
                return new TcpListenAddress(text, host, port);
            }
            default:
                throw Bad(text, colon < 0 && text.Length > 0 && text.Contains('/')
                    ? "unknown address type (did you mean fifo:" + text + " or file:" + text + "?)"
                    : "unknown address type '" + keyword + "' (expected fifo, stdio, fd, file, unix, unix-listen, tcp, tcp-listen)");
        }
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
