using System.Globalization;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using PipeTransport.Kestrel;

namespace PipeTransport.Perf.Kestrel;

/// <summary>
/// Child mode <c>kestrel-server sockets|pipe|pipe-inline</c>: the app under test, identical on every
/// transport, on a free loopback port: <c>/plaintext</c> (13 bytes, TechEmpower style), <c>/64k</c> (one
/// 64 KiB body) and <c>/stats</c> (RSS and managed heap after an aggressive compacting GC, for the
/// idle-memory scenario). Prints "ready PORT", serves until stdin closes.
/// </summary>
internal static class KestrelServer
{
    private static readonly byte[] s_hello = "Hello, World!"u8.ToArray();
    private static readonly byte[] s_64k = Enumerable.Range(0, 64 * 1024).Select(i => (byte)('a' + i % 26)).ToArray();

    public static async Task<int> RunAsync(string transport)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Listen(IPAddress.Loopback, 0);
            k.AddServerHeader = false;
        });
        switch (transport)
        {
            case "sockets":
                break;
            case "pipe":
                builder.WebHost.UsePipeTransport();
                break;
            case KestrelTransports.PipeInline:
                builder.WebHost.UsePipeTransport(o => o.UnsafePreferInlineScheduling = true);
                break;
            case KestrelTransports.PipePoolSend:
                builder.WebHost.UsePipeTransport(o => o.ConnectionOptions.PoolSendThreshold = 64 * 1024);
                break;
            case KestrelTransports.PipeNoYield:
                builder.WebHost.UsePipeTransport(o => o.ReactorsYieldBeforeWaiting = false);
                break;
            case KestrelTransports.PipeDedicated:
                builder.WebHost.UsePipeTransport(o => o.ReactorPolling = ReactorPolling.DedicatedThread);
                break;
            case KestrelTransports.PipeHandOff:
                builder.WebHost.UsePipeTransport(o => o.ReactorPolling = ReactorPolling.HandOffToThreadPool);
                break;
            default:
                throw new ArgumentException($"unknown transport {transport}");
        }

        await using var app = builder.Build();
        app.Run(context =>
        {
            var body = context.Request.Path.Value switch
            {
                "/plaintext" => s_hello,
                "/64k" => s_64k,
                "/stats" => Stats(),
                _ => null,
            };
            if (body is null)
            {
                context.Response.StatusCode = 404;
                return Task.CompletedTask;
            }

            context.Response.ContentType = "text/plain";
            context.Response.ContentLength = body.Length;
            return context.Response.Body.WriteAsync(body, 0, body.Length);
        });
        await app.StartAsync();
        string address = app.Urls.Single();
        Console.Out.WriteLine("ready " + new Uri(address).Port.ToString(CultureInfo.InvariantCulture));
        Console.Out.Flush();

        // The harness stops us by closing stdin.
        await Console.In.ReadToEndAsync();
        await app.StopAsync();
        return 0;
    }

    private static byte[] Stats()
    {
        // As in idle-server: compact and give free GC memory back to the OS, so RSS counts what the
        // connections hold rather than garbage left by accepting them.
        GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        long heap = GC.GetTotalMemory(forceFullCollection: true);
        string[] statm = File.ReadAllText("/proc/self/statm").Split(' ');
        long rss = long.Parse(statm[1], CultureInfo.InvariantCulture) * Environment.SystemPageSize;
        return System.Text.Encoding.ASCII.GetBytes(string.Create(CultureInfo.InvariantCulture, $"{rss} {heap}"));
    }
}
