// placeholder, replaced by the classifier implementation
namespace flatwall { int classifier_placeholder = 0; }
