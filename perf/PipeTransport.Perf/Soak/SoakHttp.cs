using System.Net;
using System.Net.Sockets;
using System.Text;

namespace PipeTransport.Perf.Soak;

/// <summary>Raw HTTP/1.1 over a socket: the chaos needs to stop anywhere in a request, and to reset.</summary>
internal static class SoakHttp
{
    public static async Task<Socket> ConnectAsync(int port, CancellationToken cancellationToken)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), cancellationToken);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Closes with an RST (SO_LINGER 0), as a crashed or impatient client does.</summary>
    public static void Reset(Socket socket)
    {
        try
        {
            socket.LingerState = new LingerOption(true, 0);
        }
        catch (SocketException)
        {
        }

        socket.Dispose();
    }

    /// <summary>
    /// Sends <paramref name="request"/> on a fresh connection, optionally half-closes, reads to EOF and
    /// returns the status and body; the request should ask for <c>Connection: close</c>.
    /// </summary>
    public static async Task<(int Status, string Body)> ExchangeAsync(int port, string request, bool halfClose, CancellationToken cancellationToken)
    {
        using var socket = await ConnectAsync(port, cancellationToken);
        await socket.SendAsync(Encoding.ASCII.GetBytes(request), cancellationToken);
        if (halfClose)
        {
            socket.Shutdown(SocketShutdown.Send);
        }

        var response = new MemoryStream();
        var buffer = new byte[16 * 1024];
        int n;
        while ((n = await socket.ReceiveAsync(buffer, cancellationToken)) > 0)
        {
            response.Write(buffer, 0, n);
        }

        string text = Encoding.ASCII.GetString(response.GetBuffer(), 0, (int)response.Length);
        int end = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        if (!text.StartsWith("HTTP/1.1 ", StringComparison.Ordinal) || end < 0 || !int.TryParse(text.AsSpan(9, 3), out int status))
        {
            throw new SoakCheckException($"not an HTTP response ({response.Length} bytes): {SoakServer.OneLine(text[..Math.Min(text.Length, 80)])}");
        }

        return (status, text[(end + 4)..]);
    }

    /// <summary>GET <c>/plaintext</c> on a fresh connection; throws <see cref="SoakCheckException"/> unless the answer is right.</summary>
    public static async Task PlaintextAsync(int port, bool halfClose, CancellationToken cancellationToken)
    {
        var (status, body) = await ExchangeAsync(port, "GET /plaintext HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n", halfClose, cancellationToken);
        if (status != 200 || body != SoakData.Hello)
        {
            throw new SoakCheckException($"GET /plaintext answered {status} '{SoakServer.OneLine(body[..Math.Min(body.Length, 80)])}'");
        }
    }
}
