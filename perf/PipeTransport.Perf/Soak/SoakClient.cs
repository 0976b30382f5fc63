using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace PipeTransport.Perf.Soak;

/// <summary>
/// Child mode <c>soak-client PORT</c>: a client process the chaos kills with SIGKILL. Two connections
/// download a large <c>/big</c> response slowly, two upload a large <c>/echo</c> body slowly; prints
/// "started" once all four are moving, and ends by itself after <see cref="Lifetime"/> if nobody kills it.
/// </summary>
internal static class SoakClient
{
    private static readonly TimeSpan Lifetime = TimeSpan.FromSeconds(30);

    public static async Task<int> RunAsync(int port)
    {
        using var stop = new CancellationTokenSource(Lifetime);
        var moving = new CountdownEvent(4);
        var connections = new[]
        {
            DownloadAsync(port, moving, stop.Token), DownloadAsync(port, moving, stop.Token),
            UploadAsync(port, moving, stop.Token), UploadAsync(port, moving, stop.Token),
        };
        await Task.Run(() => moving.Wait(stop.Token));
        Console.Out.WriteLine("started");
        Console.Out.Flush();
        try
        {
            await Task.WhenAll(connections);
        }
        catch (OperationCanceledException)
        {
        }

        return 0;
    }

    private static async Task DownloadAsync(int port, CountdownEvent moving, CancellationToken ct)
    {
        using var socket = await SoakHttp.ConnectAsync(port, ct);
        await socket.SendAsync("GET /big?n=1073741824 HTTP/1.1\r\nHost: soak\r\n\r\n"u8.ToArray(), ct);
        var buffer = new byte[16 * 1024];
        if (await socket.ReceiveAsync(buffer, ct) > 0)
        {
            moving.Signal();
        }

        while (await socket.ReceiveAsync(buffer, ct) > 0)
        {
            await Task.Delay(5, ct);
        }
    }

    private static async Task UploadAsync(int port, CountdownEvent moving, CancellationToken ct)
    {
        using var socket = await SoakHttp.ConnectAsync(port, ct);
        const int size = 1 << 30;
        await socket.SendAsync(Encoding.ASCII.GetBytes(string.Create(CultureInfo.InvariantCulture,
            $"POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: {size}\r\n\r\n")), ct);
        var chunk = new byte[16 * 1024];
        await socket.SendAsync(chunk, ct);
        moving.Signal();
        for (int sent = chunk.Length; sent < size; sent += chunk.Length)
        {
            await socket.SendAsync(chunk, ct);
            await Task.Delay(5, ct);
        }
    }
}
