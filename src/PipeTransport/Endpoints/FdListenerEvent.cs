using Mono.Unix.Native;

namespace PipeTransport;

/// <summary>An event of an <see cref="FdListener"/> at the fd limit (see <see cref="FdListenerOptions.Events"/>).</summary>
/// <param name="Kind">What happened.</param>
/// <param name="Listener">The listener's endpoint, as errors name it.</param>
/// <param name="Errno">The errno of a failed <c>accept4</c>, or 0.</param>
/// <param name="Duration">How long accepting was paused (<see cref="FdListenerEventKind.FdLimitLeft"/>), else zero.</param>
internal readonly record struct FdListenerEvent(FdListenerEventKind Kind, string Listener, Errno Errno, TimeSpan Duration);
