using System.Collections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;

namespace PipeTransport.Kestrel;

/// <summary>
/// The feature collection: the transport's own features are answered by type test against this object;
/// anything Kestrel or middleware sets goes into a short list created on the first Set (a list beats a
/// dictionary for the handful of entries a connection gets).
/// </summary>
internal sealed partial class PipeConnectionContext : IFeatureCollection
{
    private List<KeyValuePair<Type, object?>>? _setFeatures;
    private int _revision;

    bool IFeatureCollection.IsReadOnly => false;

    int IFeatureCollection.Revision => _revision;

    object? IFeatureCollection.this[Type key]
    {
        get => GetFeature(key);
        set => SetFeature(key, value);
    }

    TFeature? IFeatureCollection.Get<TFeature>() where TFeature : default => (TFeature?)GetFeature(typeof(TFeature));

    void IFeatureCollection.Set<TFeature>(TFeature? instance) where TFeature : default => SetFeature(typeof(TFeature), instance);

    private object? GetFeature(Type key)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (_setFeatures is { } set)
        {
            foreach (var pair in set)
            {
                if (pair.Key == key)
                {
                    return pair.Value;
                }
            }
        }
        return IsOwnFeature(key) ? this : null;
    }

    private void SetFeature(Type key, object? value)
    {
        ArgumentNullException.ThrowIfNull(key);
        _revision++;
        var set = _setFeatures ??= new List<KeyValuePair<Type, object?>>(4);
        for (var i = 0; i < set.Count; i++)
        {
            if (set[i].Key == key)
            {
                set[i] = new(key, value);
                return;
            }
        }
        set.Add(new(key, value));
    }

    private static bool IsOwnFeature(Type key) =>
        key == typeof(IConnectionIdFeature) ||
        key == typeof(IConnectionTransportFeature) ||
        key == typeof(IConnectionItemsFeature) ||
        key == typeof(IMemoryPoolFeature) ||
        key == typeof(IConnectionLifetimeFeature) ||
        key == typeof(IConnectionEndPointFeature) ||
        key == typeof(IPeerCredentialsFeature);

    private static readonly Type[] s_ownFeatures =
    [
        typeof(IConnectionIdFeature),
        typeof(IConnectionTransportFeature),
        typeof(IConnectionItemsFeature),
        typeof(IMemoryPoolFeature),
        typeof(IConnectionLifetimeFeature),
        typeof(IConnectionEndPointFeature),
        typeof(IPeerCredentialsFeature),
    ];

    IEnumerator<KeyValuePair<Type, object>> IEnumerable<KeyValuePair<Type, object>>.GetEnumerator()
    {
        foreach (var type in s_ownFeatures)
        {
            if (GetFeature(type) is { } feature)
            {
                yield return new(type, feature);
            }
        }
        if (_setFeatures is { } set)
        {
            foreach (var pair in set.ToArray())
            {
                if (pair.Value is not null && !IsOwnFeature(pair.Key))
                {
                    yield return new(pair.Key, pair.Value);
                }
            }
        }
    }

    IEnumerator IEnumerable.GetEnumerator() => ((IEnumerable<KeyValuePair<Type, object>>)this).GetEnumerator();
}
