import six

VALUE = six.PY3
