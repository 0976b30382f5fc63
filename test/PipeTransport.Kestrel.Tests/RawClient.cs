using System.Net;
using System.Net.Sockets;
using System.Text;

namespace PipeTransport.Kestrel.Tests;

/// <summary>A client on a bare socket, for what HttpClient will not do: half-close, reset, stall, slowloris.</summary>
internal sealed class RawClient : IDisposable
{
    private RawClient(Socket socket) => Socket = socket;

    public Socket Socket { get; }

    public static async Task<RawClient> ConnectAsync(EndPoint endPoint, CancellationToken ct)
    {
        var socket = endPoint is UnixDomainSocketEndPoint
            ? new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
            : new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            await socket.ConnectAsync(endPoint, ct);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        return new RawClient(socket);
    }

    public async Task SendAsync(string text, CancellationToken ct) => await SendAsync(Encoding.ASCII.GetBytes(text), ct);

    public async Task SendAsync(ReadOnlyMemory<byte> bytes, CancellationToken ct)
    {
        while (!bytes.IsEmpty)
        {
            var sent = await Socket.SendAsync(bytes, SocketFlags.None, ct);
            bytes = bytes[sent..];
        }
    }

    /// <summary>Reads until the server closes its side (EOF).</summary>
    public async Task<string> ReadToEndAsync(CancellationToken ct)
    {
        var all = new MemoryStream();
        var buffer = new byte[64 * 1024];
        int read;
        while ((read = await Socket.ReceiveAsync(buffer, SocketFlags.None, ct)) > 0)
        {
            all.Write(buffer, 0, read);
        }
        return Encoding.ASCII.GetString(all.ToArray());
    }

    /// <summary>Reads until what was read ends with <paramref name="end"/> (or EOF).</summary>
    public async Task<string> ReadUntilAsync(string end, CancellationToken ct)
    {
        var text = new StringBuilder();
        var buffer = new byte[64 * 1024];
        while (!text.ToString().EndsWith(end, StringComparison.Ordinal))
        {
            var read = await Socket.ReceiveAsync(buffer, SocketFlags.None, ct);
            if (read == 0)
            {
                break;
            }
            text.Append(Encoding.ASCII.GetString(buffer, 0, read));
        }
        return text.ToString();
    }

    /// <summary>Reads at least <paramref name="count"/> bytes (or to EOF).</summary>
    public async Task<int> ReadAtLeastAsync(int count, CancellationToken ct)
    {
        var buffer = new byte[64 * 1024];
        var total = 0;
        while (total < count)
        {
            var read = await Socket.ReceiveAsync(buffer, SocketFlags.None, ct);
            if (read == 0)
            {
                break;
            }
            total += read;
        }
        return total;
    }

    /// <summary>Closes with RST instead of FIN (SO_LINGER with a zero timeout).</summary>
    public void Reset()
    {
        Socket.LingerState = new LingerOption(true, 0);
        Socket.Close();
    }

    public void Dispose() => Socket.Dispose();
}
