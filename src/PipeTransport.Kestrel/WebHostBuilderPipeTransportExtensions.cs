using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using PipeTransport.Kestrel;

namespace Microsoft.AspNetCore.Hosting;

/// <summary>Serves Kestrel over PipeTransport.</summary>
public static class WebHostBuilderPipeTransportExtensions
{
    /// <summary>
    /// Makes Kestrel accept TCP (<c>Listen</c>, <c>ListenAnyIP</c>, <c>ListenLocalhost</c>, URLs), Unix
    /// socket (<c>ListenUnixSocket</c>, <c>http://unix:/path</c>), inherited listening socket
    /// (<c>ListenHandle</c>) and <see cref="FifoEndPoint"/> connections through PipeTransport's epoll
    /// reactor; other endpoints stay with the transports registered before. Call it after Kestrel is set
    /// up (<c>WebApplication.CreateBuilder(...).WebHost.UsePipeTransport()</c> does): Kestrel asks the
    /// last registered transport first.
    /// </summary>
    /// <param name="builder">The web host builder.</param>
    /// <param name="configure">Sets <see cref="PipeTransportOptions"/>; may be null.</param>
    /// <returns>The builder.</returns>
    public static IWebHostBuilder UsePipeTransport(this IWebHostBuilder builder, Action<PipeTransportOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.ConfigureServices(services =>
        {
            services.AddOptions<PipeTransportOptions>();
            services.TryAddEnumerable(ServiceDescriptor.Singleton<IConnectionListenerFactory, PipeTransportFactory>());
            if (configure is not null)
            {
                services.Configure(configure);
            }
        });
    }
}
